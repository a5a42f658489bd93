# stowage bound to a nixpkgs (`withPkgs pkgs`): the scripts of the image functions
# (extraCommands, fakeRootCommands, runAsRoot) run as dockerTools runs them — by the bash of
# `pkgs`, with its stdenv's tools (coreutils, findutils, sed, grep, awk, tar, gzip, …) on PATH
# before any `nativeBuildInputs` — unless `shell` says otherwise. Of `pkgs` it reads `bash` and
# `stdenv.initialPath` alone, and only for images that have scripts.
{
  # stowage's functions, unbound
  stowage,
  # a nixpkgs, or anything with `bash` and `stdenv.initialPath`
  pkgs,
}:
assert builtins.isAttrs pkgs && pkgs ? bash && pkgs ? stdenv.initialPath
  || throw "stowage.withPkgs: the argument is not a nixpkgs: it must have bash and stdenv.initialPath (withPkgs pkgs, where pkgs = import <nixpkgs> { })";
let
  scripts = [ "extraCommands" "fakeRootCommands" "runAsRoot" ];
  hasScript = args: builtins.any (name: (args.${name} or null) != null) scripts;
  # `function` with the shell and tools of `pkgs` for the scripts, when there are any
  bound = function: args:
    function (
      if builtins.isAttrs args && hasScript args then
        args // {
          shell = args.shell or pkgs.bash;
          nativeBuildInputs = pkgs.stdenv.initialPath ++ (args.nativeBuildInputs or [ ]);
        }
      else
        args
    );
in
stowage // {
  streamLayeredImage = bound stowage.streamLayeredImage;
  buildLayeredImage = bound stowage.buildLayeredImage;
  buildImage = bound stowage.buildImage;
  buildImageWithNixDb = bound stowage.buildImageWithNixDb;
  buildLayeredImageWithNixDb = bound stowage.buildLayeredImageWithNixDb;
}
