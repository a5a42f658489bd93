# An overlay that replaces the functions of `pkgs.dockerTools` that stowage has with stowage's,
# bound to that pkgs (scripts run by its bash with stdenv's tools, as dockerTools runs them);
# nixpkgs' own stay for the rest (streamNixShellImage, exportImage, fakeNss, binSh,
# caCertificates, …). Of pkgs it reads `dockerTools`, and what `withPkgs` reads.
withPkgs: final: prev: {
  dockerTools = prev.dockerTools // {
    inherit (withPkgs final) streamLayeredImage buildLayeredImage buildImage mergeImages pullImage
      buildImageWithNixDb buildLayeredImageWithNixDb;
  };
}
