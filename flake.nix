{
  description = "stowage: container images from the Nix store, built by a Nix plugin";

  # No inputs: the plugin is built by `make` (against the Nix it is loaded into), not by this flake.
  outputs = { self }: {
    # The functions of builtins.stowage. Using them needs the plugin loaded
    # (`nix --option plugin-files …/libstowage.so`, or `plugin-files` in nix.conf); without it,
    # evaluating `lib` fails with a message that says so.
    lib = import ./nix;

    # pkgs.dockerTools with stowage's functions in place of those it has (bound to that pkgs:
    # scripts run by its bash with stdenv's tools, as dockerTools runs them); nixpkgs' own stay for
    # the rest (streamNixShellImage, exportImage, fakeNss, binSh, caCertificates, …). Needs the
    # plugin loaded, as `lib` does.
    overlays.default = final: prev: {
      dockerTools = prev.dockerTools // {
        inherit (self.lib.withPkgs final)
          streamLayeredImage buildLayeredImage buildImage mergeImages pullImage;
      };
    };

    # `nix flake init -t <stowage>`: a flake with an image (its `nixpkgs` input gives the
    # packages).
    templates.default = {
      path = ./templates/image;
      description = "A container image built by stowage (needs the plugin loaded)";
      welcomeText = ''
        # A stowage image
        Build it with the plugin loaded:

            nix --option plugin-files /path/to/libstowage.so build .#image
            docker load < result

        or stream it without an archive: `nix build .#image.stream && ./result | podman load`.
      '';
    };
  };
}
