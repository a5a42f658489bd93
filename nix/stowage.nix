# The Nix side of builtins.stowage, evaluated by the plugin with its primitives (`prims`).
# The plugin bundles this file with the files it imports (build.rs inlines them), so it works
# wherever libstowage.so is loaded. It only passes data: every check and every decision is the
# Rust core's.
prims:
let
  # the image builder, added to the store once per evaluation, when an image first needs it
  builder = "${prims.builder null}/bin/stowage";
  # a derivation built by `stowage <subcommand>`, from its structured attributes
  stowageDerivation = subcommand: attrs: derivation ({
    system = prims.system;
    inherit builder;
    args = [ subcommand ];
    __structuredAttrs = true;
    preferLocalBuild = true;
    allowSubstitutes = false;
  } // attrs);
  # the public function named, which takes a set: anything else is refused by the core's check,
  # whose error names the function (a function's own `{ … }:` pattern would not)
  takesSet = function: f: args: f (if builtins.isAttrs args then args else prims.checkArgs function args);
  # the archive of a stream, for the public function named (which errors name)
  archive = import ./archive.nix { inherit stowageDerivation; };
  # copyToRegistry and copyTo for an image's stream
  copies = import ./copy-to.nix { inherit stowageDerivation; };
  # the stream derivation of a layered image, for the public function named
  layeredStream = import ./stream-layered-image.nix { inherit prims stowageDerivation copies; };
  streamLayeredImage = takesSet "streamLayeredImage" (layeredStream "streamLayeredImage");
  buildLayeredImage = takesSet "buildLayeredImage" (import ./build-layered-image.nix {
    inherit archive copies;
    streamLayeredImage = layeredStream "buildLayeredImage";
  });
  merges = import ./merge-images.nix { inherit prims stowageDerivation archive; };
  buildImage = takesSet "buildImage" (import ./build-image.nix { inherit prims stowageDerivation archive copies; });
  buildImageIndex =
    takesSet "buildImageIndex" (import ./build-image-index.nix { inherit prims stowageDerivation archive copies; });
  pullImage = import ./pull-image.nix { inherit prims stowageDerivation; };
  stowage = {
    inherit (prims) version goarch fakeNss;
    inherit streamLayeredImage buildLayeredImage buildImage buildImageIndex pullImage;
    inherit (merges) mergeImages streamMergedImages;
  };
in
stowage // {
  # the same functions, their scripts run as dockerTools runs them: with the shell and tools of
  # the nixpkgs given
  withPkgs = pkgs: import ./with-pkgs.nix { inherit stowage pkgs; };
}
