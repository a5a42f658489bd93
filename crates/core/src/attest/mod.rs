//! What is said about an image besides its bytes: its software bill of materials (SPDX,
//! CycloneDX), built from the exact closure Nix exported rather than guessed from files.
pub mod sbom;
