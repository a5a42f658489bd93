# copyToRegistry and copyTo (nix2container's names): executables, `nix run`-able, that push an
# image with `stowage push` — to its own name (copyToRegistry: `imageName:imageTag`, so the name
# carries the registry), or to the destination they are given (copyTo docker://HOST/REPO:TAG).
{
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
}:
# the image's stream (a stream derivation with imageName and imageTag)
stream:
let
  script = program: dest:
    stowageDerivation "build-copy-script" {
      name = program;
      image = stream;
      inherit dest program;
    }
    // { meta.mainProgram = program; };
in
{
  copyToRegistry = script "copy-to-registry" "docker://${stream.imageName}:${stream.imageTag}";
  copyTo = script "copy-to" null;
}
