#!/usr/bin/env bash
# Makes tests/fixtures/: small images written by real tools — Docker Engine (`docker save`),
# podman, buildah, skopeo and umoci — for the tests that read other tools' images (fromImage,
# mergeImages). Each image is built from scratch out of the same few small files (no network),
# in stores of its own under a temporary folder that is removed at the end, also on failure.
# Also writes tests/fixtures/README.md, with the tools' versions.
#
# As root on Debian 12 with `make setup`'s packages: scripts/make-fixtures.sh [OUT_DIR]
#
# Deterministic where the tools allow it: files, owners and modes are fixed, and podman and
# buildah take --timestamp, umoci explicit dates. Docker 20.10's builder has no such option, so
# docker-save.tar's config (its `created` dates) and hence its image ID change on each run; its
# layers do not.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$here/tests/fixtures}" && cd "${1:-$here/tests/fixtures}" && pwd)
# 2023-11-14T22:13:20Z
export SOURCE_DATE_EPOCH=1700000000
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
# Debian's client, which matches its engine (another may come first on PATH).
docker_cli=/usr/bin/docker
for tool in dockerd "$docker_cli" podman buildah skopeo umoci tar; do
  command -v "$tool" >/dev/null || { echo "make-fixtures: $tool is missing: run make setup" >&2; exit 1; }
done

fixtures=(docker-save.tar podman-docker-archive.tar podman-oci-archive.tar buildah-oci-archive.tar
  skopeo-oci.tar umoci-oci-layout.tar)
# Written afresh: a second run once kept the first run's skopeo-oci.tar (cause not found).
for f in "${fixtures[@]}"; do rm -f "${out:?}/$f"; done

work=$(mktemp -d /tmp/stowage-fixtures.XXXXXX)
dockerd_pid=
cleanup() {
  local status=$?
  if [[ -n $dockerd_pid ]]; then
    # SIGTERM lets dockerd stop its containerd and unmount what it mounted.
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
  fi
  # Whatever is still mounted under the work folder (nothing, with vfs), deepest first.
  findmnt -rn -o TARGET | grep -F "$work/" | sort -r | xargs -r -n1 umount -l || true
  rm -rf "$work"
  if ((status)); then
    echo "make-fixtures: failed ($status)" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The files: a base layer (a few text files, directories, an empty directory, a symlink) and an
# app layer on top that adds a file, replaces one and adds a directory.
ctx=$work/context
mkdir -p "$ctx"/base/etc "$ctx"/base/usr/share/fixture/docs "$ctx"/base/srv "$ctx"/base/var/empty \
  "$ctx"/app/srv/data "$ctx"/app/etc
printf 'fixture base 1\n' > "$ctx/base/etc/fixture-release"
printf 'hello from the base layer\n' > "$ctx/base/usr/share/fixture/hello.txt"
printf 'a small text file\nof two lines\n' > "$ctx/base/usr/share/fixture/docs/notes.txt"
ln -s hello.txt "$ctx/base/usr/share/fixture/link"
printf 'greetings from the app layer\n' > "$ctx/app/srv/greeting.txt"
printf 'one\ntwo\nthree\n' > "$ctx/app/srv/data/list.txt"
printf 'fixture app 1\n' > "$ctx/app/etc/fixture-release"
find "$ctx" -type d -exec chmod 0755 {} +
find "$ctx" -type f -exec chmod 0644 {} +
chown -R 0:0 "$ctx"
find "$ctx" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# One build file for Docker's and podman's builders: two COPY layers, and a config whose ENV,
# WORKDIR, LABEL and CMD are history entries without a layer.
containerfile() {
  cat <<DOCKERFILE
FROM scratch
COPY base/ /
COPY app/ /
ENV PATH=/bin FIXTURE=$1
WORKDIR /srv
LABEL made-by=$1
CMD ["/bin/sh", "-c", "cat /srv/greeting.txt"]
DOCKERFILE
}

echo "make-fixtures: docker" >&2
d=$work/docker
mkdir -p "$d"
dockerd --storage-driver vfs --iptables=false --bridge=none --data-root "$d/data" \
  --exec-root "$d/exec" --pidfile "$d/pid" -H "unix://$d/sock" > "$d/log" 2>&1 &
dockerd_pid=$!
docker() { DOCKER_BUILDKIT=0 "$docker_cli" -H "unix://$d/sock" "$@"; }
for _ in $(seq 300); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
docker version >/dev/null || { cat "$d/log" >&2; exit 1; }
containerfile docker > "$ctx/Dockerfile.docker"
docker build -q -f "$ctx/Dockerfile.docker" -t fixture/docker:1 "$ctx" >/dev/null
docker save -o "$out/docker-save.tar" fixture/docker:1
docker_version=$("$docker_cli" -H "unix://$d/sock" version --format 'client {{.Client.Version}}, engine {{.Server.Version}}')
kill "$dockerd_pid"
wait "$dockerd_pid" || true
dockerd_pid=

echo "make-fixtures: podman" >&2
p=$work/podman
podman() {
  command podman --root "$p/store" --runroot "$p/run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}
containerfile podman > "$ctx/Containerfile.podman"
podman build -q --layers --timestamp "$SOURCE_DATE_EPOCH" -f "$ctx/Containerfile.podman" \
  -t fixture/podman:1 "$ctx" >/dev/null
podman save -q --format docker-archive -o "$out/podman-docker-archive.tar" fixture/podman:1
podman save -q --format oci-archive -o "$out/podman-oci-archive.tar" fixture/podman:1

echo "make-fixtures: buildah" >&2
b=$work/buildah
buildah() { command buildah --root "$b/store" --runroot "$b/run" --storage-driver vfs "$@"; }
ctr=$(buildah from scratch)
buildah copy -q "$ctr" "$ctx/base" / >/dev/null
buildah config --env PATH=/bin --env FIXTURE=buildah --workingdir /srv --label made-by=buildah "$ctr"
buildah commit -q --timestamp "$SOURCE_DATE_EPOCH" "$ctr" fixture/buildah:base >/dev/null
ctr=$(buildah from fixture/buildah:base)
buildah copy -q "$ctr" "$ctx/app" / >/dev/null
buildah config --cmd '["/bin/sh", "-c", "cat /srv/greeting.txt"]' "$ctr"
buildah commit -q --timestamp "$SOURCE_DATE_EPOCH" "$ctr" fixture/buildah:1 >/dev/null
# buildah's own store, pushed as an OCI archive with gzip layers
buildah push -q --compression-format gzip fixture/buildah:1 \
  "oci-archive:$out/buildah-oci-archive.tar:fixture/buildah:1"

echo "make-fixtures: skopeo" >&2
# Docker's archive re-written by skopeo as an OCI archive with gzip layers.
skopeo copy -q --dest-compress --dest-compress-format gzip "docker-archive:$out/docker-save.tar" \
  "oci-archive:$out/skopeo-oci.tar:fixture/skopeo:1"

echo "make-fixtures: umoci" >&2
u=$work/umoci/layout
umoci init --layout "$u"
umoci new --image "$u:1"
umoci config --image "$u:1" --created "$created" --history.created "$created" \
  --architecture amd64 --os linux --config.env PATH=/bin --config.env FIXTURE=umoci \
  --config.workingdir /srv --config.label made-by=umoci \
  --config.cmd /bin/sh --config.cmd -c --config.cmd 'cat /srv/greeting.txt'
umoci insert --image "$u:1" --history.created "$created" "$ctx/base" /
umoci insert --image "$u:1" --history.created "$created" "$ctx/app" /
umoci gc --layout "$u"
# The layout as a tar, the way a user would make one (`tar -C layout -cf x.tar .`: names with ./).
find "$u" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tar --sort=name --owner=0 --group=0 --numeric-owner -C "$u" -cf "$out/umoci-oci-layout.tar" .

versions=(
  "docker-save.tar|Docker Engine ($docker_version; Debian docker.io $(dpkg-query -W -f='${Version}' docker.io)): \`docker build\` (the classic builder), \`docker save\`"
  "podman-docker-archive.tar|$(command podman --version): \`podman build --layers --timestamp\`, \`podman save --format docker-archive\`"
  "podman-oci-archive.tar|$(command podman --version): the same image, \`podman save --format oci-archive\`"
  "buildah-oci-archive.tar|$(command buildah --version | cut -d' ' -f1-3): \`buildah from scratch\`, \`copy\`, \`commit --timestamp\` (twice), \`push --compression-format gzip oci-archive:…\`"
  "skopeo-oci.tar|$(skopeo --version): \`skopeo copy --dest-compress-format gzip docker-archive:docker-save.tar oci-archive:…\`"
  "umoci-oci-layout.tar|$(umoci --version): \`umoci init\`, \`new\`, \`config\`, \`insert\` (twice), \`gc\`; the layout tarred by GNU tar $(tar --version | head -1 | awk '{print $NF}') (\`tar -C layout -cf … .\`)"
)
{
  cat <<'HEAD'
# Image archives made by real tools

Small images (a few KB) that other tools wrote, for the tests that build on them
(`fromImage`) and merge them (`mergeImages`): tests/fixture_archives.rs. They are the tools'
own output, committed as it came out; regenerate them (and this file) with
`scripts/make-fixtures.sh` (as root, after `make setup`; no network).

Every image holds the same two layers, built from scratch: a base layer
(`/etc/fixture-release`, `/usr/share/fixture/{hello.txt,docs/notes.txt,link → hello.txt}`, the
empty folder `/var/empty`, `/srv`) and an app layer (`/srv/greeting.txt`,
`/srv/data/list.txt`, and `/etc/fixture-release` replaced), with the config
`Env = [PATH=/bin FIXTURE=<tool>]`, `WorkingDir = /srv`, `Labels = {made-by: <tool>}`,
`Cmd = [/bin/sh -c "cat /srv/greeting.txt"]` (skopeo's is Docker's image, re-written).

| file | made by |
|---|---|
HEAD
  for v in "${versions[@]}"; do
    printf '| `%s` | %s |\n' "${v%%|*}" "${v#*|}"
  done
  cat <<'TAIL'

Docker 20.10's builder cannot fix its dates, so `docker-save.tar`'s config (and with it its image
ID and skopeo's copy) differ on each run; its layers do not. The others come out the same.

Quirks the tools wrote, kept as they are: podman's docker-archive holds each layer once as
`<digest>.tar` and again as a symlink `<id>/layer.tar` to it; podman and buildah add the label
`io.buildah.version`; podman's and buildah's OCI layers are gzip (their docker-archive's are not);
umoci names its image by the tag alone (`1`), writes its blobs with mode 0600, and its second
layer's tar is cut short — the last file's data is not padded to a whole block and there are no
end-of-archive blocks (as in umoci issue #436). GNU tar calls that layer
"Unexpected EOF in archive"; skopeo, podman and `umoci unpack` read it.
TAIL
} > "$out/README.md"
chmod 0644 "$out"/*.tar "$out/README.md"
ls -l "$out" >&2
