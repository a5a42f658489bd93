# pullImage: an image fetched from a registry by digest (dockerTools' arguments), as a
# fixed-output derivation whose output is an OCI image layout in a tarball, holding the
# registry's manifest, config and layers byte for byte; fromImage and mergeImages take it.
{
  # ./names.nix
  names,
  # the call of a public function, for its derivations (./stowage.nix)
  call,
  # derivations built by the stowage executable (./stowage.nix)
  stowageDerivation,
}:
# imageName, imageDigest, sha256 or hash, finalImageName, finalImageTag, os, arch, variant,
# tlsVerify, name: checked by the core
args:
let
  called = call "pullImage" args;
  imageName = builtins.seq called (names.imageName (args.finalImageName or args.imageName or null));
  imageTag = args.finalImageTag or "latest";
in
stowageDerivation "build-pull" (called // {
  name = args.name or "${names.baseName imageName}-${imageTag}.oci.tar";
  # (one of the two, the core's check says; without either, a hash that lets the build start,
  # so that the builder reports what is missing)
  outputHash = args.sha256 or args.hash or "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  outputHashAlgo = "sha256";
  outputHashMode = "flat";
  # the registry timeouts (crates/core/src/registry/timeouts.rs), as the caller's environment
  # (or the daemon's) sets them: a fixed-output build may hear these
  impureEnvVars = [ "STOWAGE_REGISTRY_TIMEOUT" "STOWAGE_REGISTRY_MIN_RATE" ];
})
// {
  inherit imageName imageTag;
  imageDigest = args.imageDigest or null;
}
