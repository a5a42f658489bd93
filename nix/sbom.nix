# An image's SBOM: `sbom`, its SPDX 2.3 JSON document, and `sbom.cyclonedx`, its CycloneDX 1.5
# one — files the builder writes from the stream's plan (which store paths the image holds), the
# stream's closure (their NAR hashes and references) and what evaluation knows of `contents`
# (deriver, meta). Neither reads a file of the image.
{
  # small derivations built by the stowage executable (./stowage.nix)
  smallDerivation,
}:
{
  # the image's stream derivation
  stream,
  # the name its files are named after
  baseName,
  # the image's contents (or copyToRoot) as given: derivations carry a deriver and meta
  contents ? [ ],
  # the store items copied into the image's root rather than held in its store
  inRoot ? [ ],
}:
let
  isDerivation = item: builtins.isAttrs item && item ? outPath;
  describe = item: {
    path = "${item}";
    deriver = if item ? drvPath then builtins.unsafeDiscardStringContext item.drvPath else null;
    license = item.meta.license or null;
    homepage = item.meta.homepage or null;
    description = item.meta.description or null;
  };
  inRootPaths = map (item: "${item}") inRoot;
  document = format: extension:
    smallDerivation "build-sbom" {
      name = "${baseName}.${extension}";
      inherit stream format;
      described = map describe (builtins.filter isDerivation contents);
      inRoot = inRootPaths;
      exportReferencesGraph.closure = [ stream ] ++ inRootPaths;
    };
in
{
  sbom = document "spdx" "spdx.json" // { cyclonedx = document "cyclonedx" "cdx.json"; };
}
