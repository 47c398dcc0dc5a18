//! The templates and profiles are compiled into the binary (include_dir!, include_str!). Cargo does not
//! track files a macro reads, so tell it to rebuild when either folder changes.

fn main() {
    println!("cargo::rerun-if-changed=../templates");
    println!("cargo::rerun-if-changed=../profiles");
}
