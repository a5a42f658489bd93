# What is said about an image, as files the builder writes from the stream's plan (which store
# paths the image holds), the stream's closure (their NAR hashes and references) and what
# evaluation knows of `contents` (deriver, meta), reading no file of the image: `sbom`, its SPDX
# 2.3 JSON document, `sbom.cyclonedx`, its CycloneDX 1.5 one, and `provenance`, an in-toto
# statement (SLSA provenance v1) whose subject a push fills in.
{
  # small derivations built by the stowage executable (./stowage.nix)
  smallDerivation,
  # the stowage executable, and the system it builds for
  builder,
  system,
}:
{
  # the image's stream derivation
  stream,
  # the public function that made it
  function,
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
  document = format: extension: extra:
    smallDerivation "build-attestation" ({
      name = "${baseName}.${extension}";
      inherit stream format;
      described = map describe (builtins.filter isDerivation contents);
      inRoot = inRootPaths;
      exportReferencesGraph.closure = [ stream ] ++ inRootPaths;
    } // extra);
in
{
  sbom = document "spdx" "spdx.json" { } // { cyclonedx = document "cyclonedx" "cdx.json" { }; };
  provenance = document "provenance" "intoto.json" {
    build = {
      derivation = builtins.unsafeDiscardStringContext stream.drvPath;
      inherit function system;
      storeDir = builtins.storeDir;
      builder = builtins.unsafeDiscardStringContext "${builder}";
    };
  };
}
