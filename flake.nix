{
  description = "stowage: container images from the Nix store, built by a Nix plugin";

  # No inputs: the plugin is built by `make` (against the Nix it is loaded into), not by this flake.
  outputs = { self }: {
    # The functions of builtins.stowage. Using them needs the plugin loaded
    # (`nix --option plugin-files …/libstowage.so`, or `plugin-files` in nix.conf); without it,
    # evaluating `lib` fails with a message that says so.
    lib = import ./nix;

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
