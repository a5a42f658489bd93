//! What an image is, before any byte of it is written: which store paths share a layer
//! ([`layering`]), the fully planned images a builder hands the streamer ([`plan`]), the image
//! config ([`config`]), its platform ([`platform`]) and the name and tag it is loaded under
//! ([`mod@reference`]).

pub mod config;
pub mod layering;
pub mod plan;
pub mod platform;
pub mod reference;
