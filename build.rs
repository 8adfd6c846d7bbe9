//! `sqlx::migrate!` embeds `migrations/` at compile time, and on stable Rust a proc macro cannot
//! tell Cargo which files it read: without this, a new migration is left out of the binary until
//! something else in the crate changes (the sqlx documentation's advice).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
