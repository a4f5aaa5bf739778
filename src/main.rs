//! The `lvbak` command-line tool.
//!
//! Exit codes: 0 success; 1 the archive (or ticket) is invalid or a check
//! failed; 2 usage error; 3 an I/O error (a file could not be opened or
//! written); 130 interrupted by Ctrl-C (see `Interrupt`).

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use lvbak::archive::Depth;
use lvbak::envelope::{EnvelopeVersion, Ticket};
use lvbak::repack::{RepackOptions, SecretsAction};
use lvbak::{Archive, ArchiveError, Limits, WriteOptions};

#[derive(Parser)]
#[command(
    name = "lvbak",
    version,
    about = "Read, check and rewrite Lumiverse .lvbak account archives",
    after_help = "Exit codes: 0 success; 1 invalid archive or failed check; 2 usage error; 3 I/O error; 130 interrupted (Ctrl-C)."
)]
struct Cli {
    /// Print nothing but errors (and the requested JSON).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Longest NDJSON line accepted, in bytes (default: the server's 4 MiB,
    /// or 64 MiB for legacy archives). Raise it to read an archive the server refused.
    #[arg(long, global = true, value_name = "BYTES")]
    max_line_bytes: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarise an archive: manifest, rows per table, files per bucket, secret key names.
    Inspect {
        /// The archive.
        archive: PathBuf,
        /// Print one JSON object instead of a human summary.
        #[arg(long)]
        json: bool,
    },
    /// Check an archive (fast: end records, directory, names, manifest; --deep: every byte).
    Verify {
        /// The archive.
        archive: PathBuf,
        /// Inflate and check every entry (size, CRC-32, digest, NDJSON).
        #[arg(long)]
        deep: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Also check this decryption ticket against the archive and open
        /// every secret (key names are printed, never values).
        #[arg(long, value_name = "TICKET.json")]
        ticket: Option<PathBuf>,
    },
    /// Read an archive and write it again (same rows and files, fresh trailer with digests).
    Repack {
        /// Input archive.
        input: PathBuf,
        /// Output archive.
        output: PathBuf,
        /// Same content gives identical bytes (timestamps from exportedAt).
        #[arg(long)]
        deterministic: bool,
        /// Leave the encrypted secrets out.
        #[arg(long, conflicts_with_all = ["ticket", "new_ticket"])]
        drop_secrets: bool,
        /// The current ticket, to re-encrypt the secrets under a fresh key.
        #[arg(long, value_name = "TICKET.json", requires = "new_ticket")]
        ticket: Option<PathBuf>,
        /// Where to write the new ticket (created; never overwritten).
        #[arg(long, value_name = "TICKET.json", requires = "ticket")]
        new_ticket: Option<PathBuf>,
        /// Envelope for the re-encrypted secrets: v2 (lvbak's, authenticated;
        /// the default) or v1 (what a Lumiverse 1.1 server can open).
        #[arg(long, value_parser = ["v1", "v2"], default_value = "v2", requires = "ticket")]
        envelope: String,
    },
    /// Back up one user of a SQLite database (a Lumiverse one, or one lvbak made) into an archive.
    Export {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
        /// The user to export.
        #[arg(long)]
        user: String,
        /// The archive to write.
        #[arg(long, short)]
        output: PathBuf,
        /// Data directory with the files (default: the database's folder).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Only these domains (comma-separated; see `lvbak domains`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Include vector embeddings.
        #[arg(long)]
        vectors: bool,
        /// Include the user's secrets (API keys) in an encrypted envelope;
        /// the ticket that opens it is written to --ticket-out.
        #[arg(long, requires = "ticket_out")]
        secrets: bool,
        /// Where to write the decryption ticket (with --secrets).
        #[arg(long, value_name = "TICKET.json", requires = "secrets")]
        ticket_out: Option<PathBuf>,
        /// Envelope for secrets: v2 (default) or v1 (for a Lumiverse server).
        #[arg(long, value_parser = ["v1", "v2"], default_value = "v2")]
        envelope: String,
        /// Allow rows over 4 MiB (up to 64 MiB) by writing a legacy manifest
        /// without ndjsonFormatVersion; the Lumiverse server still reads it.
        #[arg(long)]
        large_rows: bool,
        /// Same content gives identical bytes: exportedAt 0 and an archive id
        /// derived from the user id (so two such exports share an id).
        #[arg(long)]
        deterministic: bool,
        /// Deflate level for text entries, 0-9 (the server uses 3; 1 is
        /// fastest with larger archives).
        #[arg(long, default_value_t = lvbak::container::write::DEFAULT_LEVEL, value_parser = clap::value_parser!(u32).range(0..=9))]
        level: u32,
    },
    /// Restore an archive into a SQLite database (new or existing) and its data directory.
    Import {
        /// The archive.
        archive: PathBuf,
        /// The database file (created if absent).
        #[arg(long)]
        db: PathBuf,
        /// The user to restore as (ownership is rewritten to this user).
        #[arg(long, default_value = "local-user")]
        user: String,
        /// Data directory for files (default: the database's folder).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Plan only: show what would happen, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only these domains (comma-separated); their dependencies are pulled in.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Refuse instead of pulling in dependencies of --only.
        #[arg(long)]
        no_dependencies: bool,
        /// Decryption ticket for the secrets.
        #[arg(long, value_name = "TICKET.json")]
        ticket: Option<PathBuf>,
        /// On a ticket that does not fit: cancel the import, or skip the secrets.
        #[arg(long, value_parser = ["cancel", "skip"], default_value = "cancel")]
        on_ticket_error: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the domains that --only accepts.
    Domains,
    /// Make a sample account archive, verify it, inspect it and repack it: a tour in a temp folder.
    Demo {
        /// Where to put the files (default: a new folder under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Recover an archive hit by the Lumiverse 1.0.x duplicated-chunk bug, writing a good copy.
    Repair {
        /// Input archive.
        input: PathBuf,
        /// Output archive.
        output: PathBuf,
        /// Same content gives identical bytes.
        #[arg(long)]
        deterministic: bool,
    },
}

enum Failure {
    Invalid(String),
    Io(String),
    /// Stopped by Ctrl-C; what it had written is removed.
    Interrupted(String),
}

/// What Ctrl-C does. During an export or import the first press asks the
/// engine to stop: it then fails as on any error, removing what it wrote
/// (the temporary archive; the import's staging folder and transaction).
/// Otherwise, or on a second press, the temporary files this run has
/// created are removed and the process exits with 130 at once.
struct Interrupt {
    cancel: lvbak::engine::CancelToken,
    /// An export or import is running and can be asked to stop.
    cooperative: std::sync::atomic::AtomicBool,
    /// An import is running: no press exits at once (its transaction and
    /// staging folder are the engine's to roll back, its commit must not
    /// be cut in half).
    holding: std::sync::atomic::AtomicBool,
    /// Files to remove on an immediate exit. The handler holds the lock
    /// until the process ends, so a move into place done under the lock
    /// ([`Interrupt::settle`]) happens wholly before it or not at all.
    temporary: std::sync::Mutex<Vec<PathBuf>>,
}

fn interrupt() -> &'static Interrupt {
    static INTERRUPT: std::sync::OnceLock<Interrupt> = std::sync::OnceLock::new();
    INTERRUPT.get_or_init(|| Interrupt {
        cancel: lvbak::engine::CancelToken::new(),
        cooperative: std::sync::atomic::AtomicBool::new(false),
        holding: std::sync::atomic::AtomicBool::new(false),
        temporary: std::sync::Mutex::new(Vec::new()),
    })
}

impl Interrupt {
    fn on_press(&self) {
        use std::sync::atomic::Ordering;
        if self.cooperative.swap(false, Ordering::SeqCst) {
            self.cancel.cancel();
            if self.holding.load(Ordering::SeqCst) {
                eprintln!("\nlvbak: stopping and rolling the import back");
            } else {
                eprintln!(
                    "\nlvbak: stopping and removing what was written (Ctrl-C again to quit at once)"
                );
            }
            return;
        }
        if self.holding.load(Ordering::SeqCst) {
            eprintln!("\nlvbak: still stopping: the import is rolled back (or, if it is committing, completed) as a whole");
            return;
        }
        let paths = self.temporary.lock().unwrap_or_else(|e| e.into_inner());
        for p in paths.iter() {
            let _ = std::fs::remove_file(p);
        }
        eprintln!("\nlvbak: interrupted");
        std::process::exit(130);
    }

    /// The engine's cancellation token, with Ctrl-C asking it to stop
    /// until the guard is dropped.
    fn cooperate(&self) -> Cooperating<'_> {
        self.cooperative
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Cooperating(self)
    }

    /// [`Interrupt::cooperate`] for an import: until the guard is dropped,
    /// no press exits at once.
    fn cooperate_holding(&self) -> Cooperating<'_> {
        self.holding
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cooperate()
    }

    /// Creates `p` with `open` and registers it for removal, where Ctrl-C
    /// cannot cut in between (an immediate exit either happens before the
    /// file exists or removes it).
    fn create<T>(&self, p: &Path, open: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
        let mut t = self.temporary.lock().unwrap_or_else(|e| e.into_inner());
        let made = open()?;
        t.push(p.to_path_buf());
        Ok(made)
    }

    /// Runs `f` (a move into place) where Ctrl-C cannot cut in, then
    /// forgets `paths`: an interrupted run either removed them before `f`
    /// or leaves `f`'s result whole.
    fn settle<T>(&self, paths: &[&Path], f: impl FnOnce() -> T) -> T {
        let mut t = self.temporary.lock().unwrap_or_else(|e| e.into_inner());
        let out = f();
        t.retain(|p| !paths.contains(&p.as_path()));
        out
    }
}

/// While alive, Ctrl-C cancels the engine instead of exiting.
struct Cooperating<'a>(&'a Interrupt);

impl Cooperating<'_> {
    fn token(&self) -> &lvbak::engine::CancelToken {
        &self.0.cancel
    }
}

impl Drop for Cooperating<'_> {
    fn drop(&mut self) {
        self.0
            .cooperative
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.0
            .holding
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl From<ArchiveError> for Failure {
    fn from(e: ArchiveError) -> Failure {
        match e {
            ArchiveError::Container(lvbak::container::ContainerError::Io(io)) => {
                Failure::Io(io.to_string())
            }
            other => Failure::Invalid(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Without a handler (one could not be set), Ctrl-C ends the process
    // as it always does.
    let _ = ctrlc::set_handler(|| interrupt().on_press());
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Interrupted(m)) => {
            eprintln!("lvbak: {m}");
            ExitCode::from(130)
        }
        Err(Failure::Invalid(m)) => {
            eprintln!("lvbak: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Io(m)) => {
            eprintln!("lvbak: {m}");
            ExitCode::from(3)
        }
    }
}

fn limits(cli: &Cli) -> Limits {
    let mut l = Limits::default();
    if let Some(n) = cli.max_line_bytes {
        l.ndjson_line_bytes = n;
        l.legacy_ndjson_line_bytes = l.legacy_ndjson_line_bytes.max(n);
    }
    l
}

/// Whether `a` and `b` name one existing file (through links too).
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// An error when the archive path `p` names a folder (opening one reads
/// as a file of an impossible size).
fn not_a_folder(p: &Path) -> Result<(), Failure> {
    if p.is_dir() {
        return Err(Failure::Io(format!(
            "{} is a folder; give the archive file",
            p.display()
        )));
    }
    Ok(())
}

fn open_file(p: &Path) -> Result<BufReader<File>, Failure> {
    not_a_folder(p)?;
    File::open(p)
        .map(|f| BufReader::with_capacity(lvbak::archive::FILE_BUFFER, f))
        .map_err(|e| Failure::Io(format!("cannot open {}: {e}", p.display())))
}

fn bar(cli: &Cli, len: u64, what: &str) -> ProgressBar {
    if cli.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} entries, {binary_bytes} ({binary_bytes_per_sec}), ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_owned());
    pb
}

fn run(cli: &Cli) -> Result<u8, Failure> {
    match &cli.command {
        Command::Inspect { archive, json } => {
            let mut a = Archive::open(open_file(archive)?, limits(cli))?;
            let v = lvbak::inspect::inspect(&mut a)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print_summary(&v);
            }
            Ok(0)
        }
        Command::Verify {
            archive,
            deep,
            json,
            ticket,
        } => {
            let depth = if *deep { Depth::Deep } else { Depth::Fast };
            not_a_folder(archive)?;
            if !archive.is_file() {
                return Err(Failure::Io(format!(
                    "cannot open {}: no such file",
                    archive.display()
                )));
            }
            let pb = bar(cli, 0, "verifying");
            let report = lvbak::archive::verify_path(
                archive,
                limits(cli),
                depth,
                0,
                &mut |done, total, bytes| {
                    pb.set_length(total);
                    pb.set_position(done);
                    pb.set_message(format!("verifying ({})", indicatif::HumanBytes(bytes)));
                },
            );
            pb.finish_and_clear();
            let mut ok = report.is_ok();
            let secrets = match ticket {
                Some(t) => {
                    let (v, good) = check_ticket(cli, archive, t)?;
                    ok &= good;
                    Some(v)
                }
                None => None,
            };
            if *json {
                let problems: Vec<_> = report
                    .problems
                    .iter()
                    .map(|p| json!({"entry": p.entry, "code": p.code, "message": p.message}))
                    .collect();
                let v = json!({
                    "ok": report.is_ok(),
                    "depth": if *deep { "deep" } else { "fast" },
                    "entries": report.entries,
                    "bytesChecked": report.bytes_checked,
                    "problems": problems,
                    "secrets": secrets,
                });
                let mut v = v;
                v["ok"] = json!(ok);
                if ticket.is_none() {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("secrets");
                    }
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for p in &report.problems {
                    eprintln!("lvbak: {}", p.message);
                }
                if let Some(sv) = &secrets {
                    print_secrets(cli, sv);
                }
                if ok && !cli.quiet {
                    println!(
                        "ok: {} entries{}",
                        report.entries,
                        if *deep {
                            format!(", {} bytes checked", report.bytes_checked)
                        } else {
                            String::new()
                        }
                    );
                }
            }
            Ok(if ok { 0 } else { 1 })
        }
        Command::Repack {
            input,
            output,
            deterministic,
            drop_secrets,
            ticket,
            new_ticket,
            envelope,
        } => {
            let mut a = Archive::open(open_file(input)?, limits(cli))?;
            let mut new_ticket_json = None;
            let secrets = match (ticket, new_ticket) {
                (Some(t), Some(nt)) => {
                    if nt.exists() {
                        return Err(Failure::Io(format!(
                            "{} exists; choose a new path for the new ticket",
                            nt.display()
                        )));
                    }
                    let t = read_ticket(t)?;
                    let opened = lvbak::secrets::open(&mut a, &t).map_err(secrets_failure)?;
                    let set = opened
                        .into_strict()
                        .map_err(|e| Failure::Invalid(format!("secrets: {e}")))?;
                    let version = if envelope == "v1" {
                        EnvelopeVersion::V1
                    } else {
                        EnvelopeVersion::V2
                    };
                    let id = a.manifest().archive_id.clone();
                    let sealed = lvbak::secrets::seal(version, &id, &set, now())
                        .map_err(|e| Failure::Invalid(format!("secrets: {e}")))?;
                    new_ticket_json = Some((nt.clone(), sealed.ticket.to_json()));
                    SecretsAction::Replace {
                        manifest_fields: lvbak::secrets::manifest_fields(&sealed, version),
                        count: sealed.count as u64,
                        index_json: sealed.index_json,
                        encrypted_ndjson: sealed.encrypted_ndjson,
                    }
                }
                _ if *drop_secrets => SecretsAction::Drop,
                _ => SecretsAction::Keep,
            };
            let opts = RepackOptions {
                write: WriteOptions {
                    deterministic: *deterministic,
                    spill_dir: spill_dir(output),
                    ..WriteOptions::default()
                },
                secrets,
            };
            let s = write_atomically(
                output,
                |w| lvbak::repack::repack(&mut a, w, &opts).map_err(Failure::from),
                |_| new_ticket_json.clone(),
            )?;
            if let Some((path, _)) = new_ticket_json {
                if !cli.quiet {
                    println!(
                        "wrote {} (keep it apart from the archive; it opens the secrets)",
                        path.display()
                    );
                }
            }
            if !cli.quiet {
                println!(
                    "wrote {} ({} entries, {} bytes)",
                    output.display(),
                    s.entries,
                    s.bytes
                );
            }
            Ok(0)
        }
        Command::Demo { dir } => demo(cli, dir.clone()),
        Command::Domains => {
            for d in lvbak::domain::DOMAINS {
                let deps: Vec<&str> = d.depends_on.iter().map(|x| x.as_str()).collect();
                println!(
                    "{:<20} {}{}",
                    d.id.as_str(),
                    d.title,
                    if deps.is_empty() {
                        String::new()
                    } else {
                        format!(" (needs {})", deps.join(", "))
                    }
                );
            }
            Ok(0)
        }
        Command::Export {
            db,
            user,
            output,
            data_dir,
            only,
            vectors,
            secrets,
            ticket_out,
            envelope,
            large_rows,
            deterministic,
            level,
        } => cmd_export(
            cli,
            db,
            user,
            output,
            data_dir.as_deref(),
            only,
            (*vectors, *secrets, *large_rows, *deterministic),
            ticket_out.as_deref(),
            envelope,
            *level,
        ),
        Command::Import {
            archive,
            db,
            user,
            data_dir,
            dry_run,
            only,
            no_dependencies,
            ticket,
            on_ticket_error,
            json,
        } => {
            let o = ImportArgs {
                db,
                user,
                data_dir: data_dir.as_deref(),
                dry_run: *dry_run,
                only,
                no_dependencies: *no_dependencies,
                ticket: ticket.as_deref(),
                on_ticket_error,
                json: *json,
            };
            cmd_import(cli, archive, &o)
        }
        Command::Repair {
            input,
            output,
            deterministic,
        } => {
            let mut a = Archive::open(open_file(input)?, limits(cli))?;
            let opts = RepackOptions {
                write: WriteOptions {
                    deterministic: *deterministic,
                    spill_dir: spill_dir(output),
                    ..WriteOptions::default()
                },
                secrets: SecretsAction::Keep,
            };
            let mut fixed = Vec::new();
            let s = write_atomically(
                output,
                |w| {
                    let (w, s, r) =
                        lvbak::repack::repair(&mut a, w, &opts).map_err(Failure::from)?;
                    fixed = r;
                    Ok((w, s))
                },
                |_| None,
            )?;
            if !cli.quiet {
                for r in &fixed {
                    println!(
                        "repaired {}: dropped a duplicated copy of {} bytes (lines {}..{})",
                        r.entry,
                        r.dropped_bytes,
                        r.dropped_lines.0,
                        r.dropped_lines.0 + r.dropped_lines.1 - 1
                    );
                }
                if fixed.is_empty() {
                    println!("nothing to repair");
                }
                println!(
                    "wrote {} ({} entries, {} bytes)",
                    output.display(),
                    s.entries,
                    s.bytes
                );
            }
            Ok(0)
        }
    }
}

/// The folder of a file being written (an archive, or an import's
/// database), where a large archive's central directory waits in a
/// temporary file (see [`WriteOptions::spill_dir`] and
/// `ImportOptions::spill_dir`).
fn spill_dir(output: &Path) -> Option<PathBuf> {
    Some(folder_of(output))
}

/// The folder a file path names its file in (`.` for a bare name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes an output archive to a new temporary file beside `path`
/// (`.NAME.<random>.partial`, created only if that name is free, so no
/// file or link of that name is ever written through), syncs it to disk
/// and moves it into place only when everything succeeded; on any failure
/// the temporary file is removed and whatever was at `path` stays. When
/// `ticket` gives a ticket for the new archive (its path and bytes), the
/// ticket is created first (never over an existing file) and removed again
/// if the archive cannot be moved into place: an archive whose secrets
/// only that ticket opens never replaces the old one without it.
fn write_atomically<T>(
    path: &Path,
    f: impl FnOnce(BufWriter<File>) -> Result<(BufWriter<File>, T), Failure>,
    ticket: impl FnOnce(&T) -> Option<(PathBuf, zeroize::Zeroizing<Vec<u8>>)>,
) -> Result<T, Failure> {
    let name = path.file_name().filter(|_| !path.is_dir()).ok_or_else(|| {
        Failure::Io(format!(
            "{} is a folder; give the archive's file name (for example {}/backup.lvbak)",
            path.display(),
            path.display().to_string().trim_end_matches('/')
        ))
    })?;
    let dir = folder_of(path);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}.partial",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    let tmp = dir.join(tmp_name);
    // Only files this run created are ever removed on Ctrl-C.
    let ctrl_c = interrupt();
    let file = ctrl_c
        .create(&tmp, || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
        })
        .map_err(|e| Failure::Io(format!("cannot create {}: {e}", tmp.display())))?;
    let remove_tmp = |e: Failure| {
        ctrl_c.settle(&[&tmp], || std::fs::remove_file(&tmp).ok());
        e
    };
    let (w, t) = f(BufWriter::with_capacity(256 * 1024, file)).map_err(remove_tmp)?;
    if ctrl_c.cancel.is_cancelled() {
        // Ctrl-C asked the engine to stop after its last check.
        return Err(remove_tmp(engine_failure(
            lvbak::engine::EngineError::Cancelled,
        )));
    }
    let synced = w
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all());
    synced.map_err(|e| remove_tmp(Failure::Io(format!("cannot write {}: {e}", tmp.display()))))?;
    let ticket = ticket(&t);
    let mut settled: Vec<&Path> = vec![&tmp];
    if let Some((tpath, bytes)) = &ticket {
        // (Never created over an existing file: only a ticket written
        // here is registered for removal.)
        write_secret_file(tpath, bytes).map_err(remove_tmp)?;
        settled.push(tpath);
    }
    let moved = ctrl_c.settle(&settled, || {
        // A ticket at the archive's own path would be replaced by it.
        let r = match &ticket {
            Some((tpath, _)) if same_file(tpath, path) => Err(std::io::Error::other(format!(
                "it is the new ticket {}",
                tpath.display()
            ))),
            _ => std::fs::rename(&tmp, path),
        };
        if r.is_err() {
            if let Some((tpath, _)) = &ticket {
                let _ = std::fs::remove_file(tpath);
            }
            let _ = std::fs::remove_file(&tmp);
        }
        r
    });
    if let Err(e) = moved {
        return Err(Failure::Io(format!(
            "cannot move the new archive to {}: {e}",
            path.display()
        )));
    }
    // The rename itself, made durable (where a folder can be opened).
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(t)
}

fn print_summary(v: &serde_json::Value) {
    let m = &v["manifest"];
    println!("archive   {}", m["archiveId"].as_str().unwrap_or("?"));
    println!("exported  {} (Unix seconds)", m["exportedAt"]);
    println!(
        "format    schema {}, ndjson {}, {} entries, {} bytes",
        m["schemaVersion"],
        if m.get("ndjsonFormatVersion").is_some() {
            m["ndjsonFormatVersion"].to_string()
        } else {
            "legacy".into()
        },
        v["entries"],
        v["size"]
    );
    let tables = v["tables"].as_object().cloned().unwrap_or_default();
    let rows: u64 = tables.values().filter_map(|x| x.as_u64()).sum();
    let nonempty = tables
        .values()
        .filter(|x| x.as_u64().unwrap_or(0) > 0)
        .count();
    println!(
        "tables    {} ({} non-empty), {} rows",
        tables.len(),
        nonempty,
        rows
    );
    for (t, n) in &tables {
        if n.as_u64().unwrap_or(0) > 0 {
            println!("  {t:<28} {n}");
        }
    }
    if let Some(vt) = v["vectorTables"].as_object().filter(|o| !o.is_empty()) {
        for (t, n) in vt {
            println!("vectors   {t}: {n}");
        }
    }
    if let Some(files) = v["files"].as_object() {
        let parts: Vec<String> = files.iter().map(|(b, n)| format!("{b} {n}")).collect();
        println!(
            "files     {}",
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(", ")
            }
        );
    }
    let s = &v["secrets"];
    println!("secrets   {}", s["count"]);
    if let Some(keys) = s["keys"].as_array() {
        for k in keys {
            println!("  {}", k.as_str().unwrap_or("?"));
        }
    }
    if let Some(mf) = v["missingFiles"].as_array().filter(|a| !a.is_empty()) {
        println!("missing   {} files (listed in the trailer)", mf.len());
    }
}

fn demo(cli: &Cli, dir: Option<PathBuf>) -> Result<u8, Failure> {
    use lvbak::store::{Sink, StorePath};
    let dir = dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("lvbak-demo-{}", std::process::id())));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Io(format!("cannot create {}: {e}", dir.display())))?;
    let say = |s: String| {
        if !cli.quiet {
            println!("{s}");
        }
    };
    let src_dir = dir.join("source");
    let dst_dir = dir.join("restored");
    let src_db = src_dir.join("lumiverse.db");
    let dst_db = dst_dir.join("lumiverse.db");
    for p in [&src_db, &dst_db] {
        if p.exists() {
            return Err(Failure::Io(format!(
                "{} exists; run the demo in an empty folder",
                p.display()
            )));
        }
    }
    let user = "demo-user";
    let st = |e: lvbak::store::StoreError| Failure::Io(e.to_string());

    // 1. A sample account in a new SQLite database.
    let mut src = open_store(&src_db, Some(&src_dir), user)?;
    src.begin().map_err(st)?;
    let columns: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(DEMO_COLUMNS).unwrap_or_default();
    let rows: Vec<_> = demo_rows(user)
        .into_iter()
        .map(|(table, row)| (table, complete_demo_row(&columns, table, &row)))
        .collect();
    let mut n_rows = 0;
    for (table, row) in &rows {
        if let (Some(spec), Some(obj)) = (lvbak::domain::table(table), row.as_object()) {
            src.insert_row(spec, obj).map_err(st)?;
            n_rows += 1;
        }
    }
    src.put_setting(
        "theme",
        r##"{"mode":"dark","accent":"#7c5cff"}"##,
        1_795_000_000,
    )
    .map_err(st)?;
    src.put_setting(
        "embeddingConfig",
        r#"{"enabled":true,"provider":"openai-compatible","model":"demo-embed","dimensions":4}"#,
        1_795_000_000,
    )
    .map_err(st)?;
    let img = "0de30de3-0000-4000-8000-00000000000a";
    let files: [(lvbak::Bucket, String, &[u8]); 7] = [
        (
            lvbak::Bucket::Images,
            format!("{img}.png"),
            b"\x89PNG\r\n\x1a\n demo image",
        ),
        (
            lvbak::Bucket::Thumbnails,
            format!("{img}_thumb_sm_v2.webp"),
            b"RIFF\x10\0\0\0WEBPVP8 small",
        ),
        (
            lvbak::Bucket::Avatars,
            format!("{img}.png"),
            b"\x89PNG\r\n\x1a\n avatar",
        ),
        (
            lvbak::Bucket::Databank,
            "lore/notes.md".to_owned(),
            b"# Lore\nThe lantern river.\n",
        ),
        (
            lvbak::Bucket::ThemeAssets,
            "bundle-1/style.css".to_owned(),
            b"body { color: #eee }",
        ),
        (
            lvbak::Bucket::ThemeAssets,
            "bundle-1/fonts/x.woff2".to_owned(),
            b"wOF2 demo",
        ),
        (
            lvbak::Bucket::NotificationSounds,
            "completion.ogg".to_owned(),
            b"OggS\0\x02 demo sound",
        ),
    ];
    for (bucket, name, bytes) in &files {
        let path = StorePath::for_entry(*bucket, user, name)
            .ok_or_else(|| Failure::Invalid(format!("bad demo path {name}")))?;
        src.write_file(&path, &mut &bytes[..]).map_err(st)?;
    }
    let mut v = serde_json::Map::new();
    for (k, val) in [
        ("id", json!(format!("{user}:chat_chunk:chunk-1:0"))),
        ("user_id", json!(user)),
        ("source_type", json!("chat_chunk")),
        ("source_id", json!("chunk-1")),
        ("owner_id", json!("chat-1")),
        ("chunk_index", json!(0)),
        ("content", json!("The lantern river remembers.")),
        ("metadata_json", json!("{}")),
        ("updated_at", json!(1_795_000_000)),
        ("vector_b64", json!("AACAPwAAAEAAAEBAAACAQA==")),
    ] {
        v.insert(k.into(), val);
    }
    src.insert_vector("embeddings", &v).map_err(st)?;
    src.put_secret("connection_conn-1_api_key", "sk-demo-0000000000000000")
        .map_err(st)?;
    src.put_secret(
        "mcp_server_mcp-1_headers",
        r#"{"Authorization":"Bearer demo"}"#,
    )
    .map_err(st)?;
    src.commit().map_err(st)?;
    say(format!(
        "1. made a sample account in {} ({} rows across every domain, {} files, 1 vector, 2 secrets)",
        src_db.display(),
        n_rows + 2,
        files.len()
    ));

    // 2. Export it with its secrets (v2 envelope) and a ticket.
    let archive = dir.join("demo-user.lvbak");
    let ticket_path = dir.join("demo-user.ticket.json");
    let opts = lvbak::engine::ExportOptions {
        include_vectors: true,
        secrets: Some(EnvelopeVersion::V2),
        ..Default::default()
    };
    let cancel = lvbak::engine::CancelToken::new();
    let res = write_atomically(
        &archive,
        |w| lvbak::engine::export(&mut src, w, &opts, &mut |_| {}, &cancel).map_err(engine_failure),
        |res| {
            res.ticket
                .as_ref()
                .map(|t| (ticket_path.clone(), t.to_json()))
        },
    )?;
    let ticket = res
        .ticket
        .ok_or_else(|| Failure::Invalid("no ticket produced".into()))?;
    say(format!(
        "2. exported: {} ({} entries, {} bytes) and ticket {}",
        archive.display(),
        res.summary.entries,
        res.summary.bytes,
        ticket_path.display()
    ));

    // 3. Verify every byte, and the ticket against the archive.
    let report = lvbak::archive::verify(open_file(&archive)?, Limits::default(), Depth::Deep);
    if !report.is_ok() {
        return Err(Failure::Invalid(format!(
            "demo archive failed verification: {:?}",
            report.problems
        )));
    }
    let (sv, good) = check_ticket(cli, &archive, &ticket_path)?;
    if !good {
        return Err(Failure::Invalid(
            "demo ticket did not open every secret".into(),
        ));
    }
    say(format!(
        "3. verified: {} entries, {} bytes checked (sizes, CRC-32, SHA-256, NDJSON); ticket opens {} secrets ({})",
        report.entries, report.bytes_checked, sv["count"], sv["envelope"].as_str().unwrap_or("?")
    ));

    // 4. Restore it into a second database as another user: a dry run first, then for real.
    let restored_user = "restored-user";
    let mut a = Archive::open(open_file(&archive)?, Limits::default())?;
    let mut dst = open_store(&dst_db, Some(&dst_dir), restored_user)?;
    let mut iopts = lvbak::engine::ImportOptions {
        ticket: Some(ticket),
        dry_run: true,
        ..Default::default()
    };
    let plan = lvbak::engine::import(&mut a, &mut dst, &iopts, &mut |_| {}, &cancel)
        .map_err(engine_failure)?;
    iopts.dry_run = false;
    // Ctrl-C stops the import (rolled back with its staging folder) rather
    // than ending the process in the middle of it.
    let ctrl_c = interrupt().cooperate_holding();
    let done = lvbak::engine::import(&mut a, &mut dst, &iopts, &mut |_| {}, ctrl_c.token())
        .map_err(engine_failure)?;
    drop(ctrl_c);
    let planned: u64 = plan.tables.iter().map(|t| t.inserted).sum();
    let inserted: u64 = done.tables.iter().map(|t| t.inserted).sum();
    let files_written: u64 = done.files.values().map(|c| c.written).sum();
    say(format!(
        "4. restored into {} as {restored_user}: dry run planned {planned} rows, import inserted {inserted} rows, {files_written} files, {} vectors, {} secrets",
        dst_db.display(),
        done.vectors.inserted,
        done.secrets.restored.len()
    ));
    say(format!("Next: lvbak inspect {}", archive.display()));
    say(format!(
        "      lvbak import {} --db {} --dry-run",
        archive.display(),
        dir.join("another.db").display()
    ));
    // Every row, plus the two settings, arrived.
    Ok(if planned == inserted && inserted as usize == n_rows + 2 {
        0
    } else {
        1
    })
}

/// Every column of each table a Lumiverse 1.1 export carries, with a
/// neutral value (an empty string or JSON text, 0, null, or the first of a
/// column's allowed words): the server skips a row without every column it
/// declares NOT NULL (LUMIVERSE-1.1-FORMAT.md §4), so the demo's rows are
/// completed with these before they are stored.
const DEMO_COLUMNS: &str = include_str!("demo_columns.json");

/// `row` with every column `DEMO_COLUMNS` lists for `table` that it lacks.
fn complete_demo_row(
    columns: &serde_json::Map<String, serde_json::Value>,
    table: &str,
    row: &serde_json::Value,
) -> serde_json::Value {
    let mut full = columns
        .get(table)
        .and_then(|c| c.as_object())
        .cloned()
        .unwrap_or_default();
    if let Some(obj) = row.as_object() {
        for (k, v) in obj {
            full.insert(k.clone(), v.clone());
        }
    }
    serde_json::Value::Object(full)
}

/// One row in every table of every domain, wired together.
fn demo_rows(user: &str) -> Vec<(&'static str, serde_json::Value)> {
    let img = "0de30de3-0000-4000-8000-00000000000a";
    let mut out: Vec<(&'static str, serde_json::Value)> = vec![
        (
            "images",
            json!({"id": img, "filename": format!("{img}.png"), "original_filename": "lantern.png", "mime_type": "image/png", "user_id": user, "owner_character_id": "char-1", "owner_chat_id": null}),
        ),
        (
            "presets",
            json!({"id": "preset-1", "name": "Default ✨", "parameters": "{}", "user_id": user}),
        ),
        (
            "global_addons",
            json!({"id": "addon-1", "name": "Add-on", "metadata": "{}", "user_id": user}),
        ),
        (
            "regex_scripts",
            json!({"id": "regex-1", "script_id": "s1", "name": "Trim", "user_id": user}),
        ),
        (
            "connection_profiles",
            json!({"id": "conn-1", "name": "Main", "provider": "openai", "preset_id": "preset-1", "has_api_key": 1, "user_id": user}),
        ),
        (
            "image_gen_connections",
            json!({"id": "ig-1", "name": "Images", "has_api_key": 0, "user_id": user}),
        ),
        (
            "tts_connections",
            json!({"id": "tts-1", "name": "Voice", "has_api_key": 0, "user_id": user}),
        ),
        (
            "stt_connections",
            json!({"id": "stt-1", "name": "Ears", "has_api_key": 0, "user_id": user}),
        ),
        (
            "mcp_servers",
            json!({"id": "mcp-1", "name": "Tools", "has_headers": 1, "user_id": user}),
        ),
        (
            "world_books",
            json!({"id": "wb-1", "name": "Lore of the river", "user_id": user}),
        ),
        (
            "world_book_entries",
            json!({"id": "wbe-1", "world_book_id": "wb-1", "content": "The river remembers.", "vectorized": 1}),
        ),
        (
            "personas",
            json!({"id": "persona-1", "name": "Wanderer", "avatar_path": format!("{img}.png"), "image_id": img, "attached_world_book_id": "wb-1", "user_id": user}),
        ),
        (
            "characters",
            json!({"id": "char-1", "name": "Archivist 📜", "avatar_path": format!("{img}.png"), "image_id": img, "user_id": user}),
        ),
        (
            "character_gallery",
            json!({"id": "gal-1", "character_id": "char-1", "image_id": img, "user_id": user}),
        ),
        (
            "packs",
            json!({"id": "pack-1", "name": "Starter pack", "user_id": user}),
        ),
        (
            "loom_items",
            json!({"id": "loom-1", "pack_id": "pack-1", "name": "Thread"}),
        ),
        (
            "loom_tools",
            json!({"id": "tool-1", "pack_id": "pack-1", "name": "Shuttle", "input_schema": "{}"}),
        ),
        (
            "lumia_items",
            json!({"id": "lumia-1", "pack_id": "pack-1", "name": "Glow"}),
        ),
        (
            "theme_assets",
            json!({"id": "asset-1", "bundle_id": "bundle-1", "slug": "style", "storage_type": "file", "file_name": "style.css", "user_id": user}),
        ),
        (
            "theme_assets",
            json!({"id": "asset-2", "bundle_id": "bundle-1", "slug": "font", "storage_type": "file", "file_name": "fonts/x.woff2", "user_id": user}),
        ),
        (
            "databanks",
            json!({"id": "db-1", "name": "Notes", "user_id": user}),
        ),
        (
            "databank_documents",
            json!({"id": "doc-1", "databank_id": "db-1", "name": "Lore notes", "file_path": "lore/notes.md", "user_id": user}),
        ),
        (
            "databank_chunks",
            json!({"id": "dbc-1", "document_id": "doc-1", "databank_id": "db-1", "content": "The lantern river.", "user_id": user}),
        ),
        (
            "chats",
            json!({"id": "chat-1", "character_id": "char-1", "name": "First meeting", "user_id": user}),
        ),
    ];
    for i in 0..20 {
        out.push((
            "messages",
            json!({"id": format!("msg-{i}"), "chat_id": "chat-1", "index_in_chat": i, "is_user": i % 2, "content": format!("Message {i}: ünïcödé, emoji 🌊, quotes \"ok\""), "parent_message_id": if i == 0 { serde_json::Value::Null } else { json!(format!("msg-{}", i - 1)) }}),
        ));
    }
    out.extend([
        ("message_breakdowns", json!({"message_id": "msg-1", "chat_id": "chat-1", "data": "{}", "user_id": user})),
        ("chat_chunks", json!({"id": "chunk-1", "chat_id": "chat-1", "start_message_id": "msg-0", "end_message_id": "msg-19", "content": "Messages 0-19", "vectorized_at": 1_795_000_000, "vector_model": "demo-embed"})),
        ("chat_memory_cache", json!({"id": "cache-1", "chat_id": "chat-1", "settings_key": "k", "chunks_json": "[]", "user_id": user})),
        ("memory_entities", json!({"id": "ent-1", "chat_id": "chat-1", "name": "Archivist"})),
        ("memory_mentions", json!({"id": "men-1", "chat_id": "chat-1", "entity_id": "ent-1", "chunk_id": "chunk-1"})),
        ("memory_relations", json!({"id": "rel-1", "chat_id": "chat-1", "source_entity_id": "ent-1", "target_entity_id": "ent-1", "relation_type": "self"})),
        ("memory_consolidations", json!({"id": "con-1", "chat_id": "chat-1", "summary": "They met."})),
        ("memory_font_colors", json!({"id": "font-1", "chat_id": "chat-1", "entity_id": "ent-1", "color": "#fff"})),
        ("memory_salience", json!({"id": "sal-1", "chat_id": "chat-1", "chunk_id": "chunk-1"})),
        ("cortex_vaults", json!({"id": "vault-1", "name": "Vault", "source_chat_id": "chat-1", "user_id": user})),
        ("cortex_vault_entities", json!({"id": "ve-1", "vault_id": "vault-1", "name": "Archivist"})),
        ("cortex_vault_relations", json!({"id": "vr-1", "vault_id": "vault-1"})),
        ("cortex_vault_chunks", json!({"id": "vc-1", "vault_id": "vault-1", "source_chunk_id": "chunk-1", "content": "memory"})),
        ("cortex_chat_links", json!({"id": "link-1", "chat_id": "chat-1", "target_chat_id": "chat-1", "vault_id": "vault-1", "user_id": user})),
        ("dream_weaver_sessions", json!({"id": "dw-1", "session_number": 1, "persona_id": "persona-1", "user_id": user})),
        ("dream_weaver_messages", json!({"id": "dwm-1", "session_id": "dw-1", "payload": "{}", "user_id": user})),
        ("dream_weaver_saved_prompts", json!({"id": "dwp-1", "prompt": "Dream", "user_id": user})),
        ("weaver_sessions", json!({"id": "ws-1", "character_id": "char-1", "user_id": user})),
        ("weaver_extraction", json!({"session_id": "ws-1", "committed_facts": "[]", "user_id": user})),
        ("weaver_interview_turns", json!({"id": "wit-1", "session_id": "ws-1", "axis": "{}", "user_id": user})),
        ("weaver_bible", json!({"session_id": "ws-1", "spine": "{}", "user_id": user})),
        ("weaver_fields", json!({"id": "wf-1", "session_id": "ws-1", "user_id": user})),
        ("weaver_taste", json!({"user_id": user, "profile": "{}"})),
        ("weaver_people", json!({"id": "wp-1", "session_id": "ws-1", "name": "A person", "user_id": user})),
        ("extensions", json!({"id": "ext-1", "identifier": "demo.ext", "name": "Demo extension", "install_scope": "user", "installed_by_user_id": user})),
    ]);
    out
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn read_ticket(p: &Path) -> Result<Ticket, Failure> {
    let bytes = std::fs::read(p)
        .map_err(|e| Failure::Io(format!("cannot read ticket {}: {e}", p.display())))?;
    Ticket::parse(&bytes)
        .map_err(|e| Failure::Invalid(format!("ticket {}: {} ({})", p.display(), e, e.code())))
}

fn secrets_failure(e: lvbak::secrets::SecretsError) -> Failure {
    match e.ticket_code() {
        Some(code) => Failure::Invalid(format!("ticket refused: {e} ({code})")),
        None => Failure::Invalid(format!("secrets: {e}")),
    }
}

/// Checks a ticket against an archive and opens every record. Returns the
/// `secrets` JSON (envelope, count, key names; never values) and whether
/// everything opened.
fn check_ticket(
    _cli: &Cli,
    archive: &Path,
    ticket: &Path,
) -> Result<(serde_json::Value, bool), Failure> {
    let t = read_ticket(ticket)?;
    let mut a = Archive::open(open_file(archive)?, Limits::default())?;
    let opened = lvbak::secrets::open(&mut a, &t).map_err(secrets_failure)?;
    let keys: Vec<&str> = opened.secrets.keys().collect();
    let failures: Vec<String> = opened.failures.iter().map(|f| f.to_string()).collect();
    let notes: Vec<String> = opened.notes.iter().map(|n| n.to_string()).collect();
    let good = failures.is_empty();
    Ok((
        json!({
            "envelope": opened.version.to_string(),
            "count": keys.len(),
            "keys": keys,
            "ticketFingerprint": t.fingerprint(),
            "failures": failures,
            "notes": notes,
        }),
        good,
    ))
}

fn print_secrets(cli: &Cli, v: &serde_json::Value) {
    for f in v["failures"].as_array().into_iter().flatten() {
        eprintln!("lvbak: secret record failed: {}", f.as_str().unwrap_or("?"));
    }
    if cli.quiet {
        return;
    }
    println!(
        "secrets: envelope {}, {} opened",
        v["envelope"].as_str().unwrap_or("?"),
        v["count"]
    );
    for k in v["keys"].as_array().into_iter().flatten() {
        println!("  {}", k.as_str().unwrap_or("?"));
    }
    for n in v["notes"].as_array().into_iter().flatten() {
        println!("  note: {}", n.as_str().unwrap_or("?"));
    }
}

/// Creates a file only the owner can read (a ticket), failing if it exists.
fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    // Registered for removal on Ctrl-C as it is created; its caller
    // forgets it once its archive is in place.
    let ctrl_c = interrupt();
    let mut f = ctrl_c
        .create(path, || o.open(path))
        .map_err(|e| Failure::Io(format!("cannot create {}: {e}", path.display())))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        ctrl_c.settle(&[path], || std::fs::remove_file(path).ok());
        return Err(Failure::Io(format!("cannot write {}: {e}", path.display())));
    }
    Ok(())
}

fn parse_domains(
    only: &[String],
) -> Result<Option<std::collections::BTreeSet<lvbak::domain::DomainId>>, Failure> {
    if only.is_empty() {
        return Ok(None);
    }
    let mut out = std::collections::BTreeSet::new();
    for d in only {
        match lvbak::domain::DomainId::parse(d.trim()) {
            Some(x) => {
                out.insert(x);
            }
            None => {
                return Err(Failure::Invalid(format!(
                    "unknown domain {d:?}; `lvbak domains` lists them"
                )))
            }
        }
    }
    Ok(Some(out))
}

fn data_dir_for(db: &Path, data_dir: Option<&Path>) -> PathBuf {
    match data_dir {
        Some(d) => d.to_owned(),
        None => db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from(".")),
    }
}

fn open_store(
    db: &Path,
    data_dir: Option<&Path>,
    user: &str,
) -> Result<lvbak::sqlite::SqliteStore, Failure> {
    lvbak::sqlite::SqliteStore::open(db, &data_dir_for(db, data_dir), user)
        .map_err(|e| Failure::Io(format!("{}: {e}", db.display())))
}

fn engine_failure(e: lvbak::engine::EngineError) -> Failure {
    use lvbak::engine::EngineError as E;
    match e {
        E::Cancelled => Failure::Interrupted(
            "interrupted: stopped before finishing; nothing was written".into(),
        ),
        E::Archive(a) => a.into(),
        E::Secrets(s) => secrets_failure(s),
        E::Store { .. } => Failure::Io(e.to_string()),
        other => Failure::Invalid(other.to_string()),
    }
}

fn engine_bar(cli: &Cli, what: &str) -> ProgressBar {
    if cli.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} rows, {elapsed} elapsed, ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_owned());
    pb
}

#[allow(clippy::too_many_arguments)]
fn cmd_export(
    cli: &Cli,
    db: &Path,
    user: &str,
    output: &Path,
    data_dir: Option<&Path>,
    only: &[String],
    (vectors, secrets, large_rows, deterministic): (bool, bool, bool, bool),
    ticket_out: Option<&Path>,
    envelope: &str,
    level: u32,
) -> Result<u8, Failure> {
    if db.is_dir() {
        return Err(Failure::Io(format!(
            "{} is a folder; give the database file (lumiverse.db)",
            db.display()
        )));
    }
    if !db.is_file() {
        return Err(Failure::Io(format!("{} does not exist", db.display())));
    }
    // The archive must not land on the database (or its journal files).
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut f = db.as_os_str().to_owned();
        f.push(suffix);
        if same_file(Path::new(&f), output) {
            return Err(Failure::Io(format!(
                "{} is the database being exported{}; give the archive another name",
                output.display(),
                if suffix.is_empty() {
                    ""
                } else {
                    " (one of its journal files)"
                }
            )));
        }
    }
    if let Some(t) = ticket_out {
        if t.exists() {
            return Err(Failure::Io(format!(
                "{} exists; choose a new path for the ticket",
                t.display()
            )));
        }
    }
    let mut store = open_store(db, data_dir, user)?;
    let opts = lvbak::engine::ExportOptions {
        domains: parse_domains(only)?,
        include_vectors: vectors,
        secrets: secrets.then_some(if envelope == "v1" {
            EnvelopeVersion::V1
        } else {
            EnvelopeVersion::V2
        }),
        write: WriteOptions {
            deterministic,
            level,
            spill_dir: spill_dir(output),
            ..WriteOptions::default()
        },
        exported_at: deterministic.then_some(0),
        archive_id: deterministic.then(|| deterministic_id(user)),
        large_rows,
    };
    let pb = engine_bar(cli, "exporting");
    let res = write_atomically(
        output,
        |w| {
            // Ctrl-C stops the engine while it runs; after, it exits at once.
            let ctrl_c = interrupt().cooperate();
            lvbak::engine::export(
                &mut store,
                w,
                &opts,
                &mut |p| {
                    pb.set_position(p.rows_done);
                    pb.set_message(format!(
                        "exporting {} ({})",
                        p.table.as_deref().unwrap_or(p.phase),
                        indicatif::HumanBytes(p.bytes_done)
                    ));
                },
                ctrl_c.token(),
            )
            .map_err(|e| match engine_failure(e) {
                Failure::Invalid(m) if m.contains("exceeds 4194304") => Failure::Invalid(format!(
                    "{m}; pass --large-rows to write it with the legacy 64 MiB line cap"
                )),
                other => other,
            })
        },
        |res| match (&res.ticket, ticket_out) {
            (Some(t), Some(path)) => Some((path.to_path_buf(), t.to_json())),
            _ => None,
        },
    )?;
    pb.finish_and_clear();
    if !cli.quiet {
        let rows: u64 = res
            .summary
            .counts
            .iter()
            .filter(|(k, _)| !k.starts_with("lancedb:"))
            .map(|(_, n)| n)
            .sum();
        println!(
            "exported user {user}: {rows} rows in {} tables, {} files, {} bytes -> {}",
            res.summary
                .counts
                .iter()
                .filter(|(k, _)| !k.starts_with("lancedb:"))
                .count(),
            res.summary.files.iter().map(|(_, n)| n).sum::<u64>(),
            res.summary.bytes,
            output.display()
        );
        if !res.missing_files.is_empty() {
            println!(
                "{} referenced files were missing (listed in the archive's trailer)",
                res.missing_files.len()
            );
        }
        if let (Some(_), Some(path)) = (&res.ticket, ticket_out) {
            println!("secrets sealed ({envelope}); ticket written to {} (keep it apart from the archive)", path.display());
        } else if secrets {
            println!("the user has no stored secrets; no envelope written");
        }
    }
    Ok(0)
}

struct ImportArgs<'a> {
    db: &'a Path,
    user: &'a str,
    data_dir: Option<&'a Path>,
    dry_run: bool,
    only: &'a [String],
    no_dependencies: bool,
    ticket: Option<&'a Path>,
    on_ticket_error: &'a str,
    json: bool,
}

fn cmd_import(cli: &Cli, archive: &Path, o: &ImportArgs<'_>) -> Result<u8, Failure> {
    let a = Archive::open(open_file(archive)?, limits(cli))?;
    let ticket = o.ticket.map(read_ticket).transpose()?;
    if o.dry_run && !o.db.exists() {
        // A plan against a database that does not exist yet: plan against an empty one.
        let mut mem = lvbak::store::memory::MemoryStore::new(o.user);
        return finish_import(cli, o, a, &mut mem, ticket);
    }
    let mut store = open_store(o.db, o.data_dir, o.user)?;
    finish_import(cli, o, a, &mut store, ticket)
}

fn finish_import<R: std::io::Read + std::io::Seek + Send, K: lvbak::store::Sink>(
    cli: &Cli,
    o: &ImportArgs<'_>,
    a: Archive<R>,
    sink: &mut K,
    ticket: Option<Ticket>,
) -> Result<u8, Failure> {
    let opts = lvbak::engine::ImportOptions {
        domains: parse_domains(o.only)?,
        pull_dependencies: !o.no_dependencies,
        ticket,
        ticket_policy: if o.on_ticket_error == "skip" {
            lvbak::secrets::TicketPolicy::Skip
        } else {
            lvbak::secrets::TicketPolicy::Cancel
        },
        dry_run: o.dry_run,
        now: None,
        // The file entries wait beside the database while rows are written.
        spill_dir: spill_dir(o.db),
    };
    let pb = engine_bar(cli, "importing");
    let ctrl_c = interrupt().cooperate_holding();
    let cancel = ctrl_c.token();
    let report = lvbak::engine::import_owned(
        a,
        sink,
        &opts,
        &mut |p| {
            pb.set_length(p.rows_total);
            pb.set_position(p.rows_done);
            pb.set_message(format!(
                "importing {}",
                p.table.as_deref().unwrap_or(p.phase)
            ));
        },
        cancel,
    )
    .map_err(engine_failure)?;
    let late = ctrl_c.token().is_cancelled();
    drop(ctrl_c);
    pb.finish_and_clear();
    if late {
        eprintln!("lvbak: Ctrl-C came while the import was committing: it is complete");
    }
    if o.json {
        let tables: serde_json::Map<String, serde_json::Value> = report
            .tables
            .iter()
            .map(|t| {
                (
                    t.table.clone(),
                    json!({"rows": t.rows, "inserted": t.inserted, "skippedExisting": t.skipped_existing, "skippedForeign": t.skipped_foreign, "merged": t.merged, "unchanged": t.unchanged, "ignored": t.ignored}),
                )
            })
            .collect();
        let files: serde_json::Map<String, serde_json::Value> = report
            .files
            .iter()
            .map(|(b, c)| (b.as_str().to_owned(), json!({"written": c.written, "existing": c.existing, "refused": c.refused, "bytes": c.bytes})))
            .collect();
        let v = json!({
            "dryRun": report.dry_run,
            "domains": report.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            "closureAdded": report.closure_added.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            "tables": tables,
            "files": files,
            "vectors": {"restored": report.vectors.restored, "revectorise": report.vectors.revectorise, "inserted": report.vectors.inserted, "skipped": report.vectors.skipped},
            "secrets": {"inArchive": report.secrets.in_archive, "restored": report.secrets.restored, "skipped": report.secrets.skipped, "failures": report.secrets.failures, "ticketUses": report.secrets.ticket_uses, "previouslyUsedAt": report.secrets.previously_used_at},
            "ignoredTables": report.ignored_tables.iter().map(|(t, why)| json!({"table": t, "reason": why})).collect::<Vec<_>>(),
            "danglingCleared": report.dangling_cleared,
            "notes": report.notes,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    if cli.quiet {
        return Ok(0);
    }
    let verb = if report.dry_run {
        "would insert"
    } else {
        "inserted"
    };
    let ins: u64 = report.tables.iter().map(|t| t.inserted).sum();
    let skipped: u64 = report.tables.iter().map(|t| t.skipped_existing).sum();
    let foreign: u64 = report.tables.iter().map(|t| t.skipped_foreign).sum();
    let merged: u64 = report.tables.iter().map(|t| t.merged).sum();
    println!(
        "{}{verb} {ins} rows in {} tables ({skipped} already there, {merged} settings merged{})",
        if report.dry_run { "dry run: " } else { "" },
        report.tables.iter().filter(|t| t.inserted > 0).count(),
        if foreign > 0 {
            format!(", {foreign} refused: they would attach to another user's data")
        } else {
            String::new()
        }
    );
    if !report.closure_added.is_empty() {
        println!(
            "pulled in for --only: {}",
            report
                .closure_added
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let written: u64 = report.files.values().map(|c| c.written).sum();
    let existing: u64 = report.files.values().map(|c| c.existing).sum();
    println!(
        "files: {written} {}, {existing} already present",
        if report.dry_run {
            "to write"
        } else {
            "written"
        }
    );
    if report.vectors.restored {
        println!("vectors: {} restored", report.vectors.inserted);
    } else if report.vectors.revectorise {
        println!("vectors: embedding configuration differs; chunks marked for re-vectorisation");
    }
    if !report.secrets.restored.is_empty() {
        println!(
            "secrets: {} {}",
            report.secrets.restored.len(),
            if report.dry_run {
                "would be restored"
            } else {
                "restored"
            }
        );
    }
    if let Some(why) = &report.secrets.skipped {
        println!("secrets skipped: {why}");
    }
    if let Some(n) = report.secrets.ticket_uses.filter(|n| *n > 1) {
        println!("note: this ticket has now been used {n} times");
    }
    for (t, why) in &report.ignored_tables {
        println!("not imported: {t} ({why})");
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    if !report.dry_run {
        println!("If a Lumiverse server uses this database, restart it: it caches settings, memory cortex configuration and vector handles.");
    }
    Ok(0)
}

/// A UUID-v4-shaped id derived from the user id, for deterministic exports.
fn deterministic_id(user: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("lvbak deterministic archive id\0{user}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}
