# What the Nix side must know of the arguments before the core checks them: the image name
# lower-cased, as the core keeps it, and its last component, to name derivations and results;
# whether a script is given; which contents can be store paths. Valid arguments give what the
# core gives; anything else still gives a derivation, whose builder then reports what is wrong
# (without the plugin, the arguments are checked at build time).
rec {
  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  imageName = name: if builtins.isString name then builtins.replaceStrings upper lower name else "";
  # the last path component, for derivation names
  baseName = name:
    let base = baseNameOf (imageName name);
    in if builtins.match "[a-z0-9._-]+" base != null then base else "image";
  # the items of a list that can be store paths (a derivation, a path, a string in the store):
  # Nix's exportReferencesGraph refuses anything else before the builder could say what is wrong
  storeItems = builtins.filter (item: !(builtins.isString item)
    || builtins.substring 0 (builtins.stringLength builtins.storeDir + 1) item == "${builtins.storeDir}/");
  # whether a script is given: not null, and more than blanks (the core's rule:
  # crates/core/src/functions/image.rs)
  isScript = text: builtins.isString text && builtins.match "[ \t\n\r]*" text == null;
}
