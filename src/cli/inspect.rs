//! `cio-import inspect FILE`: its flags, turned into [`InspectOptions`] for [`crate::inspect`].

use super::read::ReadArgs;
use crate::exit;
use crate::inspect::InspectOptions;
use crate::source::Input;
use clap::Args;
use std::path::PathBuf;

/// Options of `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The input file, or - for stdin.
    pub input: PathBuf,
    /// How to read it.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// `events`: also count the events within the last 72 hours (they may trigger campaigns);
    /// `objects`, `relationships`: also convert every row as the import would and show what
    /// it would send.
    #[arg(long, value_enum, default_value = "people")]
    pub kind: super::KindArg,
    /// --kind objects|relationships: the object type id the operations would carry.
    #[arg(long, default_value = "1")]
    pub object_type_id: String,
    /// --kind objects|relationships: the column of the object's id, after mapping
    /// [default: object_id, or the preset's].
    #[arg(long)]
    pub object_id_column: Option<String>,
    /// --kind events: the column of the event's name.
    #[arg(long, default_value = crate::convert::event::NAME_COLUMN)]
    pub name_column: String,
    /// --kind events: the column of the event's time.
    #[arg(long, default_value = crate::convert::event::TIMESTAMP_COLUMN)]
    pub timestamp_column: String,
    /// A people file with an id and an email column: write the ids that share an email (the
    /// same person twice) to this file as merges (primary_id,secondary_id; owner-only), to
    /// review and import with --kind merges.
    #[arg(long)]
    pub suggest_merges: Option<PathBuf>,
}

impl From<&InspectArgs> for InspectOptions {
    fn from(args: &InspectArgs) -> InspectOptions {
        InspectOptions {
            input: Input::from_arg(&args.input),
            read: args.read.options(),
            json: args.json,
        }
    }
}

/// Runs `inspect`.
pub(super) fn run(args: &InspectArgs) -> anyhow::Result<u8> {
    if matches!(args.kind, super::KindArg::Devices | super::KindArg::Merges) {
        return super::inspect_kinds::run(args);
    }
    let mut opts = InspectOptions::from(args);
    if args.kind == super::KindArg::Objects {
        // The object id is the row's identifier.
        opts.read.id_column = Some(
            args.object_id_column
                .clone()
                .unwrap_or_else(|| crate::convert::object::OBJECT_ID_COLUMN.to_string()),
        );
    }
    crate::inspect::run(&opts)?;
    if args.kind == super::KindArg::Events {
        recent_events(args)?;
    }
    if let Some(out) = &args.suggest_merges {
        suggest_merges(args, out)?;
    }
    if let Some(kind) = args.kind.object_kind() {
        objects(args, kind)?;
    }
    Ok(exit::SUCCESS)
}

/// `inspect --suggest-merges FILE`: the ids that share an email, as a merges file.
fn suggest_merges(args: &InspectArgs, out: &std::path::Path) -> anyhow::Result<()> {
    let cfg = crate::config::ImportConfig::builder(Input::from_arg(&args.input))
        .read(args.read.options())
        .dry_run(true)
        .build()?;
    let s = crate::duplicates::suggest_merges(&cfg, out).map_err(|e| anyhow::anyhow!(e))?;
    let line = format!(
        "duplicates: {} {} carried by more than one id ('{}' by '{}'): {} {} suggested in {} \
(review it, then: cio-import import {} --kind merges --dry-run)",
        s.emails,
        if s.emails == 1 { "email" } else { "emails" },
        s.email_column,
        s.id_column,
        s.merges,
        if s.merges == 1 { "merge" } else { "merges" },
        out.display(),
        out.display()
    );
    let mut lines = vec![line];
    if !s.placeholders.is_empty() {
        let shown: Vec<&str> = s.placeholders.iter().take(5).map(String::as_str).collect();
        lines.push(format!(
            "duplicates: {} {} carried by more than {} ids skipped, likely a placeholder: {}{}",
            s.placeholders.len(),
            if s.placeholders.len() == 1 {
                "email"
            } else {
                "emails"
            },
            crate::duplicates::MAX_IDS_PER_EMAIL,
            shown.join(", "),
            if s.placeholders.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ));
    }
    if s.unreadable > 0 {
        lines.push(format!(
            "duplicates: {} {} could not be read and {} skipped (see: cio-import inspect {})",
            s.unreadable,
            if s.unreadable == 1 { "row" } else { "rows" },
            if s.unreadable == 1 { "was" } else { "were" },
            args.input.display()
        ));
    }
    for line in lines {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(())
}

/// `inspect --kind objects|relationships`: every row converted as the import would, and what
/// it would send.
fn objects(args: &InspectArgs, kind: crate::convert::ObjectKind) -> anyhow::Result<()> {
    let cfg = crate::config::ImportConfig::builder(Input::from_arg(&args.input))
        .read(args.read.options())
        .objects(crate::config::ObjectChoice {
            kind_given: true,
            kind: Some(kind),
            type_id: Some(args.object_type_id.clone()),
            id_column: args.object_id_column.clone(),
        })
        .dry_run(true)
        .build()?;
    let name = crate::convert::ObjectOptions::kind_str(kind);
    let survey = match crate::inspect::objects::survey(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name} not converted: {e}");
            return Ok(());
        }
    };
    for line in survey.lines(name) {
        // The JSON report stays the only thing on stdout.
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(())
}

/// `inspect --kind events`: how many events convert, and how many are within the last 72
/// hours (or without a time), as the import counts them before sending.
fn recent_events(args: &InspectArgs) -> anyhow::Result<()> {
    let cfg = crate::config::ImportConfig::builder(Input::from_arg(&args.input))
        .read(args.read.options())
        .events(Some(crate::convert::EventOptions {
            name_column: args.name_column.clone(),
            timestamp_column: args.timestamp_column.clone(),
            ..Default::default()
        }))
        .dry_run(true)
        .build()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let r = match crate::convert::event::count_recent(&cfg, now) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("events within the last 72 hours not counted: {e}");
            return Ok(());
        }
    };
    let line = format!(
        "events: {} convert; {} within the last 72 hours ({} without a timestamp)",
        r.events, r.recent, r.untimed
    );
    // The JSON report stays the only thing on stdout.
    if args.json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    if let Some(w) = r.warning(&cfg.input.display()) {
        eprintln!("{w}");
    }
    Ok(())
}
