# copyToRegistry, copyTo, copyToDockerDaemon and copyToPodman (nix2container's names):
# executables, `nix run`-able, that push an image — to its own name (copyToRegistry:
# `imageName:imageTag`, so the name carries the registry), to the destination they are given
# (copyTo docker://HOST/REPO:TAG, or any other form `stowage push` takes), into the Docker
# Engine DOCKER_HOST names, or into podman.
{
  # small derivations built by the stowage executable (./stowage.nix)
  smallDerivation,
}:
# the image's stream (a stream derivation with imageName and imageTag)
stream:
{
  # what goes beside the image in a registry (its SBOM and provenance, ./attestations.nix)
  attach ? [ ],
  # the other tags it goes under in a registry (the image's `tags`)
  tags ? [ ],
}:
let
  script = program: dest: registry:
    smallDerivation "build-copy-script" ({
      name = program;
      image = stream;
      inherit dest program;
    } // (if registry then { inherit attach tags; } else { }))
    // { meta.mainProgram = program; };
in
{
  copyToRegistry = script "copy-to-registry" "docker://${stream.imageName}:${stream.imageTag}" true;
  copyTo = script "copy-to" null true;
  # the Docker Engine that DOCKER_HOST names (or /var/run/docker.sock), without a file between
  copyToDockerDaemon = script "copy-to-docker-daemon" "docker-daemon:" false;
  # `podman load`, into the store podman's configuration names
  copyToPodman = script "copy-to-podman" "podman:" false;
}
