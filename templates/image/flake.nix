{
  description = "A container image built by stowage";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  # Build with the plugin loaded:
  #   nix --option plugin-files /path/to/libstowage.so build .#image
  # (or `plugin-files = /path/to/libstowage.so` in nix.conf), then
  #   docker load < result        (a gzip archive; podman 4.3 and older want it unpacked)
  # `nix build .#image.stream` gives a script that streams the plain archive instead:
  #   ./result | podman load
  # and `nix run .#image.copyToRegistry` pushes it to its name (`name` may carry a registry).
  outputs = { self, nixpkgs }:
    let
      stowage = builtins.stowage or (throw
        "this flake needs the stowage plugin: nix --option plugin-files /path/to/libstowage.so …");
      # an attribute per system, `f system` each
      forAllSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; })
        [ "x86_64-linux" "aarch64-linux" ]);
    in
    {
      packages = forAllSystems (system: let pkgs = nixpkgs.legacyPackages.${system}; in rec {
        image = stowage.buildLayeredImage {
          name = "hello";
          tag = "latest";
          # the image's root: each package's bin/, etc/ … linked at /, their closures in the store
          contents = [ pkgs.hello (stowage.fakeNss { }) ];
          config.Cmd = [ "/bin/hello" ];
        };
        default = image;
      });

      # `nix flake check` builds the image
      checks = forAllSystems (system: { inherit (self.packages.${system}) image; });
    };
}
