//! Generates the performance workload (see `benches/workload/mod.rs`).
//!
//! `cargo run --release --example gen_workload -- DIR [SCALE]` (SCALE: 1, 4, 16, …)

#[path = "../benches/workload/mod.rs"]
mod workload;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: gen_workload DIR [SCALE]")?);
    let scale: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let db = workload::generate(&dir, scale * 1000)?;
    println!(
        "workload x{scale}: {} (user {})",
        db.display(),
        workload::USER
    );
    Ok(())
}
