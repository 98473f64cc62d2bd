//! wharf-operator: reconciles Registry and RegistryMirror resources (see issue 5).
fn main() {
    println!("wharf-operator {}", env!("CARGO_PKG_VERSION"));
}
