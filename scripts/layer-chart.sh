#!/usr/bin/env bash
# layer-chart.sh [OUT.svg] — draws how stowage plans the layers of a real program's closure:
# Debian's /usr/bin/nix and the shared libraries it loads, each a store path referring to the
# libraries it needs (examples/closure-image.nix). The image is planned by a real Nix build with
# the plugin, in a throw-away store, at the default maxLayers and at maxLayers = 8; the chart
# has a bar per layer (its size, the store paths in it). Default output: docs/layers.svg.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
plugin=${STOWAGE_PLUGIN:-$here/target/release/libstowage.so}
out=${1:-$here/docs/layers.svg}
program=/usr/bin/nix
# a fixed store root, so that the store paths, and the chart, are the same at every run
work=$here/build/layer-chart
[[ -e $work ]] && chmod -R u+w "$work" && rm -rf "$work"
mkdir -p "$work"
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
mkdir -p "$work/etc"
printf 'substituters =\nbuild-users-group =\nsandbox = false\n' > "$work/etc/nix.conf"
export NIX_STORE_DIR=$work/store NIX_STATE_DIR=$work/state NIX_LOG_DIR=$work/log
export NIX_CONF_DIR=$work/etc NIX_USER_CONF_FILES=/dev/null

# the closure: the program and every library it loads, with the libraries each one needs
# (its NEEDED entries, as the loader resolved them)
declare -A file_of
while read -r soname path; do file_of[$soname]=$path; done < <(ldd "$program" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
needs() { objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }'; }
{
  printf '{"program":"%s","paths":[' "$(basename "$program")"
  sep=
  for name in "$(basename "$program")" "${!file_of[@]}"; do
    file=${file_of[$name]:-$program}
    printf '%s{"name":"%s","file":"%s","needs":[' "$sep" "$name" "$(readlink -f "$file")"
    s2=
    for n in $(needs "$file"); do
      [[ -n ${file_of[$n]:-} ]] && printf '%s"%s"' "$s2" "$n" && s2=,
    done
    printf ']}'
    sep=,
  done
  printf ']}\n'
} > "$work/closure.json"

# the layers of the planned image: size in bytes, then the store paths' names
layers() {
  local stream
  stream=$(nix-build --option plugin-files "$plugin" --no-out-link "$here/examples/closure-image.nix" \
    --arg closure "$work/closure.json" --arg maxLayers "$1")
  tail -n +2 "$stream" | jq -r '.images[0].layers[] |
    "\(.size) \([.source.storePaths[]? | sub(".*/[a-z0-9]{32}-"; "")] | join(" "))"'
}
layers 100 > "$work/default"
layers 8 > "$work/eight"

# The SVG: two panels of horizontal bars, lengths in proportion to the largest layer.
awk -v program="$program" '
  FNR == 1 { panel++; title[panel] = (panel == 1 ? "maxLayers = 100 (the default)" : "maxLayers = 8") }
  {
    n[panel]++; size[panel, n[panel]] = $1 + 0
    if ($1 + 0 > max) max = $1 + 0
    $1 = ""; names[panel, n[panel]] = substr($0, 2)
  }
  END {
    row = 16; left = 70; width = 520; y = 40
    for (p = 1; p <= panel; p++) y += 30 + n[p] * row
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1100\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", y + 10
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"20\" font-size=\"14\">Layers stowage plans for the closure of %s (its libraries, a store path each)</text>\n", program
    y = 40
    for (p = 1; p <= panel; p++) {
      printf "<text x=\"10\" y=\"%d\" font-weight=\"bold\">%s: %d layers</text>\n", y + 14, title[p], n[p]
      y += 22
      for (i = 1; i <= n[p]; i++) {
        w = size[p, i] / max * width; if (w < 1) w = 1
        label = names[p, i]; if (length(label) > 70) label = substr(label, 1, 67) "…"
        if (label == "") label = "(the customisation layer: links at the root)"
        printf "<text x=\"10\" y=\"%d\">layer %d</text>", y + 11, i
        printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#4878a8\"/>", left, y + 2, w, row - 4
        printf "<text x=\"%d\" y=\"%d\">%.2f MiB  %s</text>\n", left + w + 6, y + 11, size[p, i] / 1048576, label
        y += row
      }
      y += 8
    }
    print "</svg>"
  }' "$work/default" "$work/eight" > "$work/chart.svg"
mv "$work/chart.svg" "$out"
echo "layer-chart: wrote $out ($(wc -l < "$work/default") and $(wc -l < "$work/eight") layers)" >&2
