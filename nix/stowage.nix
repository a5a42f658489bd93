# The Nix side of stowage's functions, given the primitives they build on (`prims`): the
# plugin's (crates/plugin/cpp/plugin.cc, which bundles this file with the files it imports:
# crates/plugin/build.rs inlines them), or, without the plugin, the library's own
# (./library.nix). It only passes data: every check and every decision is the Rust core's. Derivations are the same in both modes — each
# gets the public function's name and its arguments as given, which the builder checks before
# it writes anything — so the same inputs give the same store paths and the same images.
prims:
let
  names = import ./names.nix;
  # the image builder, added to the store once per evaluation, when an image first needs it
  builder = prims.builder null;
  # a derivation built by `stowage <subcommand>`, from its structured attributes. An image's
  # derivations (its plan, its customisation layer, its archive, a pull) cost in proportion to
  # the image: they read, hash and compress the closure, or download it. A binary cache that
  # holds the output saves all of that, and a remote builder may take the work, as for any
  # package.
  stowageDerivation = subcommand: attrs: derivation ({
    system = prims.system;
    inherit builder;
    args = [ subcommand ];
    __structuredAttrs = true;
    storeDir = builtins.storeDir;
  } // attrs);
  # a derivation of a few bytes (a copy script, a list of references, fakeNss's tree): writing
  # it here costs less than asking a substituter for it or sending it to another machine
  smallDerivation = subcommand: attrs:
    stowageDerivation subcommand ({ preferLocalBuild = true; allowSubstitutes = false; } // attrs);
  # The call of `function` with `arguments`, for the derivations that check them. With the
  # plugin, they are checked as soon as a derivation is evaluated, so that errors point at the
  # caller's code; the builder checks them again (without the plugin, only there).
  call = function: arguments:
    builtins.seq (prims.checkArgs function arguments) { inherit function arguments; };
  # the public function named, which takes a set: anything else is refused by the core's check,
  # whose error names the function (a function's own `{ … }:` pattern would not)
  takesSet = function: f: args: f (if builtins.isAttrs args then args else prims.checkArgs function args);
  # derivations that list the store paths an image's runtime config mentions (as their
  # references), which join the image's closure as in dockerTools; null when it mentions none
  configReferences = baseName: config:
    if builtins.hasContext (builtins.toJSON config) then
      smallDerivation "build-references" { name = "references-${baseName}"; inherit config; }
    else
      null;
  # the archive of a stream, for the public function named (which errors name)
  archive = import ./archive.nix { inherit stowageDerivation; };
  # copyToRegistry and copyTo for an image's stream
  copies = import ./copy-to.nix { inherit smallDerivation; };
  # an image's SBOMs and provenance
  attestations = import ./attestations.nix { inherit smallDerivation builder; system = prims.system; };
  # the stream derivation of a layered image, for the public function named
  layeredStream = import ./stream-layered-image.nix { inherit names call stowageDerivation configReferences copies attestations; };
  streamLayeredImage = takesSet "streamLayeredImage" (layeredStream "streamLayeredImage");
  buildLayeredImage = takesSet "buildLayeredImage" (import ./build-layered-image.nix {
    inherit names archive copies;
    streamLayeredImage = layeredStream "buildLayeredImage";
  });
  merges = import ./merge-images.nix { inherit prims call stowageDerivation archive; };
  buildImage = takesSet "buildImage"
    (import ./build-image.nix { inherit names call stowageDerivation configReferences archive copies attestations; });
  buildImageIndex =
    takesSet "buildImageIndex" (import ./build-image-index.nix { inherit names call stowageDerivation archive copies; });
  pullImage = takesSet "pullImage" (import ./pull-image.nix { inherit names call stowageDerivation; });
  buildLayer = takesSet "buildLayer" (import ./build-layer.nix { inherit names call stowageDerivation; });
  # dockerTools' names for images holding a Nix database of their store paths
  withNixDb = function: f: takesSet function (args: f (args // { includeNixDB = true; }));
  # the plugin writes fakeNss while evaluating; without it, the builder writes it
  fakeNss = prims.fakeNss or (args:
    smallDerivation "build-fake-nss" { name = "fake-nss"; function = "fakeNss"; arguments = args; });
  stowage = {
    inherit (prims) version goarch;
    inherit fakeNss;
    inherit streamLayeredImage buildLayeredImage buildImage buildImageIndex pullImage buildLayer;
    inherit (merges) mergeImages streamMergedImages;
    buildImageWithNixDb = withNixDb "buildImageWithNixDb" buildImage;
    buildLayeredImageWithNixDb = withNixDb "buildLayeredImageWithNixDb" buildLayeredImage;
  };
  # the same functions, their scripts run as dockerTools runs them: with the shell and tools of
  # the nixpkgs given
  withPkgs = pkgs: import ./with-pkgs.nix { inherit stowage pkgs; };
in
stowage // {
  inherit withPkgs;
  # an overlay putting these functions into `pkgs.dockerTools`, bound to that pkgs
  overlay = import ./overlay.nix withPkgs;
}
