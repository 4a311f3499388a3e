//! A well-formed component that exports a different world: the host must
//! refuse to load it as a mode.
#![cfg(target_arch = "wasm32")]
#![allow(unsafe_code)] // generated canonical-ABI glue

wit_bindgen::generate!({
    inline: "
        package test:other@0.1.0;
        world other {
            export greet: func(name: string) -> string;
        }
    ",
});

struct Other;

impl Guest for Other {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Other);
