# pullImage: an image fetched from a registry by digest (dockerTools' arguments), as a
# fixed-output derivation whose output is an OCI image layout in a tarball, holding the
# registry's manifest, config and layers byte for byte; fromImage and mergeImages take it.
{
  # the plugin's primitives: argument checks
  prims,
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
}:
# imageName, imageDigest, sha256 or hash, finalImageName, finalImageTag, os, arch, variant,
# tlsVerify, name: checked by the plugin (prims.checkArgs)
args:
let
  image = prims.checkArgs "pullImage" args;
in
stowageDerivation "build-pull" (image // {
  outputHashAlgo = "sha256";
  outputHashMode = "flat";
  # the registry timeouts (src/timeouts.rs), as the caller's environment (or the daemon's) sets
  # them: a fixed-output build may hear these
  impureEnvVars = [ "STOWAGE_REGISTRY_TIMEOUT" "STOWAGE_REGISTRY_MIN_RATE" ];
})
// {
  imageName = image.finalImageName;
  imageTag = image.finalImageTag;
  inherit (image) imageDigest;
}
