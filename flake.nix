{
  description = "stowage: container images from the Nix store, built by a Nix plugin";

  # No inputs: the plugin and the image builder are built by `make`, not by this flake.
  outputs = { self }: {
    # The functions of builtins.stowage. With the plugin loaded
    # (`nix --option plugin-files …/libstowage.so`, or `plugin-files` in nix.conf), `lib` is
    # builtins.stowage. Without it, on any Nix, `lib { builder = ./stowage; system = "x86_64-linux"; }`
    # gives the same functions, built by the stowage executable given (see nix/default.nix).
    lib = import ./nix;

    # pkgs.dockerTools with stowage's functions in place of those it has (bound to that pkgs:
    # scripts run by its bash with stdenv's tools, as dockerTools runs them); nixpkgs' own stay for
    # the rest (streamNixShellImage, exportImage, fakeNss, binSh, caCertificates, …). This one
    # needs the plugin loaded; without it, use `(lib { builder = …; system = …; }).overlay`.
    overlays.default = final: prev: self.lib.overlay final prev;

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
