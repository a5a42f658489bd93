//! Feeds a string to the readers of image references and destinations: `ImageName::parse`,
//! `check_tag`, `parse_name_tag`, `Destination::parse` (`docker://…`) and `Target::parse`
//! (`stowage push`'s destinations).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_core::image::reference::{check_tag, parse_name_tag, ImageName};
use stowage_core::registry::destination::Destination;
use stowage_core::write::deliver::Target;

fuzz_target!(|text: &str| {
    if let Ok(name) = ImageName::parse(text) {
        // a name that was accepted is accepted as it is kept
        assert_eq!(ImageName::parse(&name.name).unwrap(), name);
        let _ = name.locate();
    }
    let _ = check_tag(text);
    let _ = parse_name_tag("name", text);
    if let Ok(destination) = Destination::parse(text) {
        assert!(check_tag(&destination.tag).is_ok(), "{text:?} gave the tag {:?}", destination.tag);
    }
    let _ = Target::parse(text);
});
