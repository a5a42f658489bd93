#!/usr/bin/env bash
# fetch-debian-source.sh SUITE DEST PACKAGE[=VERSION]...
# Downloads Debian source packages (the .orig tarballs and all) of SUITE into DEST through a
# private apt configuration under DEST: the machine's apt sources and lists stay as they were.
set -euo pipefail
suite=$1 dest=$2; shift 2
apt_dir=$dest/.apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
# The mirror of the machine's own Debian entry (the suite of its release, as apt itself reads its
# sources, one-line or deb822) serves SUITE too, with Debian's keyring.
release=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirror=$(apt-get indextargets --no-release-info --format '$(REPO_URI)' 'Created-By: Packages' "Release: $release" |
  head -n 1)
if [[ -z $mirror ]]; then
  echo "fetch-debian-source: the machine's apt sources have no Debian entry for its release (${release:-unknown}); see apt-get indextargets" >&2
  exit 1
fi
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$apt_dir/sources.list"
opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
      -o "APT::Sandbox::User=root")
apt-get "${opts[@]}" update -q >&2
(cd "$dest" && apt-get "${opts[@]}" source --download-only "$@" >&2)
rm -rf "$apt_dir"
