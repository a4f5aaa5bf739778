//! Writes the conformance kit's archives from the generator in
//! `tests/corpus/`: `spec/conformance/cases/NAME.lvbak` (and
//! `NAME.ticket.json` for ticket cases), and refreshes
//! `spec/conformance/cases.json`.
//!
//! ```sh
//! cargo run --example conformance              # every case except the large ones
//! cargo run --example conformance -- --large   # also the ~1 MiB bombs (1 GiB inflated)
//! cargo run --example conformance -- --out DIR # somewhere else
//! ```

#[path = "../tests/corpus/mod.rs"]
mod corpus;

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/conformance");
    let mut out = root.join("cases");
    let mut large = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--large" => large = true,
            "--out" => out = PathBuf::from(args.next().expect("--out needs a folder")),
            other => {
                eprintln!("usage: conformance [--large] [--out DIR] (unknown argument {other})");
                std::process::exit(2);
            }
        }
    }
    let cases = corpus::cases();
    std::fs::create_dir_all(&out)?;
    let mut written = 0;
    for c in &cases {
        if !c.in_kit || (c.large && !large) {
            continue;
        }
        std::fs::write(out.join(format!("{}.lvbak", c.name)), &c.archive)?;
        if let Some(t) = &c.ticket {
            std::fs::write(out.join(format!("{}.ticket.json", c.name)), t)?;
        }
        written += 1;
    }
    std::fs::write(root.join("cases.json"), corpus::cases_json(&cases))?;
    println!(
        "{written} of {} cases written to {} (cases.json refreshed)",
        cases.iter().filter(|c| c.in_kit).count(),
        out.display()
    );
    Ok(())
}
