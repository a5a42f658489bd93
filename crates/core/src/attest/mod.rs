//! What is said about an image besides its bytes: its software bill of materials (SPDX,
//! CycloneDX) and its provenance (in-toto, SLSA), built from the exact closure Nix exported
//! rather than guessed from files, and signatures of it in cosign's form.
pub mod provenance;
pub mod sbom;
pub mod signature;
