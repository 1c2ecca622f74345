# shellcheck shell=bash
# common.sh - what tools/demo and tools/test share: installing what is
# missing and configuring builds. Sourced, not run.

# Debian packages the build and the tests need.
RINGTAIL_DEPS=(meson ninja-build pkg-config gcc g++ clang
	liburing-dev libfuse3-dev fuse3 liblz4-dev lz4 libxxhash-dev libssl-dev python3)

# Install missing packages: with apt-get when root, otherwise print the
# exact command and stop.
rt_install_deps() {
	local missing=() p
	for p in "${RINGTAIL_DEPS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	if [ "$(id -u)" -eq 0 ]; then
		echo "ringtail: installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
			{ echo "ringtail: apt-get install failed" >&2; return 1; }
	else
		echo "ringtail: missing packages; run as root:" >&2
		echo "  sudo apt-get install -y ${missing[*]}" >&2
		return 1
	fi
}

# rt_build DIR [meson options...]: configure DIR once, then build it.
rt_build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 ||
			{ cat "$dir.setup.log" >&2; return 1; }
	fi
	ninja -C "$dir" >"$dir.build.log" 2>&1 || { cat "$dir.build.log" >&2; return 1; }
}
