//! `dashdice mode new`: a new mode crate that builds on its own, outside this
//! repository, against exactly the contract of the binary that made it.
//!
//! What it writes into the new crate's directory:
//!
//! ```text
//! Cargo.toml           the mode's manifest: a workspace of its own, explicit
//!                      dependency versions, and the built-in modes' profile
//!                      as the release profile
//! Cargo.lock           this workspace's lock file: versions known to work
//!                      together, so the first build needs no resolution and
//!                      works `--offline` (cargo drops the unused entries)
//! rust-toolchain.toml  this workspace's toolchain, with the wasm32-wasip2 target
//! .clippy.toml, .gitignore, README.md
//! src/lib.rs           the rules, from plugins/template
//! tests/rules.rs       their tests, from plugins/template
//! dashdice-mode-sdk/   the SDK this binary was built with, and its contract
//!                      in dashdice-mode-sdk/wit/
//! ```
//!
//! The SDK travels with the crate (rather than being fetched from a registry
//! or a git URL) because the contract must match the host's exactly: a
//! component built against another `wit/mode.wit` does not load. A copy
//! embedded in the binary is that contract by construction, and needs no
//! network. The starting mode is `plugins/template`, which the workspace
//! builds and tests like any mode, so what designers start from never rots.
//!
//! Everything here is plain data in, files out: [`files`] makes the files in
//! memory (so a template problem is found before anything is written), and
//! [`write`] puts them on disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

// The SDK, the contract and the template, listed by build.rs.
include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The workspace manifest: dependency versions, package fields, lints and
/// the `mode` profile are read from it, so a new crate follows the workspace.
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");
const WORKSPACE_LOCK: &str = include_str!("../../../Cargo.lock");
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");
const CLIPPY: &str = include_str!("../../../.clippy.toml");

/// Where the SDK goes inside the new crate.
pub const SDK_DIR: &str = "dashdice-mode-sdk";

/// The target a mode component is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// The longest display name `mode new` accepts.
pub const MAX_DISPLAY_NAME: usize = 64;

/// The template's own names, replaced in its sources (see [`substitute`]).
const TEMPLATE_CRATE: &str = "dashdice-mode-template";
const TEMPLATE_LIB: &str = "dashdice_mode_template";
const TEMPLATE_ID_QUOTED: &str = "\"template\"";
const TEMPLATE_ID_TICKED: &str = "`template`";
const TEMPLATE_NAME_QUOTED: &str = "\"Template\"";
const TEMPLATE_TYPE: &str = "Template";

/// How the SDK's `guest.rs` finds the contract in this repository, and in a
/// new crate (`dashdice-mode-sdk/wit`, relative to the SDK's manifest).
const GUEST_WIT_PATH: &str = "path: \"../../wit\"";
const NEW_GUEST_WIT_PATH: &str = "path: \"wit\"";

/// Names of the standard prelude a mode's type must not shadow (the
/// template's code uses them unqualified).
const PRELUDE: &[&str] = &[
    "AsMut",
    "AsRef",
    "Box",
    "Clone",
    "Copy",
    "Default",
    "Drop",
    "Eq",
    "Err",
    "Extend",
    "Fn",
    "FnMut",
    "FnOnce",
    "From",
    "Into",
    "IntoIterator",
    "Iterator",
    "None",
    "Ok",
    "Option",
    "Ord",
    "PartialEq",
    "PartialOrd",
    "Result",
    "Self",
    "Send",
    "Sized",
    "Some",
    "String",
    "Sync",
    "ToOwned",
    "ToString",
    "TryFrom",
    "TryInto",
    "Unpin",
    "Vec",
];

/// Why `mode new` made nothing, or not everything.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "mode id {0:?} is not valid: use 1 to 32 of a-z, 0-9 and '-', starting with a letter \
         (it names the mode in URLs and in the catalog)"
    )]
    InvalidId(String),
    #[error("display name {name:?} is not valid: {why}")]
    InvalidName { name: String, why: &'static str },
    #[error("{} already exists and is not empty: choose another --path, or remove it", .0.display())]
    NotEmpty(PathBuf),
    #[error("{} exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The embedded sources do not fit together: a bug of this build, found
    /// by the unit tests below before anyone ships it.
    #[error("the embedded mode sources are inconsistent (a bug in this dashdice build): {0}")]
    Template(String),
}

/// What a new mode is called, everywhere it needs a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The mode id, as in `ModeInfo::id`: `demo-dice`.
    pub id: String,
    /// What players see: `Demo Dice`.
    pub display_name: String,
    /// The Cargo package: `dashdice-mode-demo-dice`. Prefixed, so that no id
    /// can name a crate the mode depends on (`serde`, `proptest`).
    pub crate_name: String,
    /// The library's Rust name, and the `.wasm` file's stem:
    /// `dashdice_mode_demo_dice`.
    pub lib_name: String,
    /// The Rust type implementing `Rules`: `DemoDice`.
    pub type_name: String,
}

impl Names {
    /// Checks the id and the display name (the id's words, capitalised, by
    /// default) and derives the Rust names.
    pub fn new(id: &str, display_name: Option<&str>) -> Result<Self, ScaffoldError> {
        if !valid_id(id) {
            return Err(ScaffoldError::InvalidId(id.to_owned()));
        }
        let display_name = match display_name {
            Some(name) => check_display_name(name)?,
            None => id
                .split('-')
                .filter(|w| !w.is_empty())
                .map(capitalise)
                .collect::<Vec<_>>()
                .join(" "),
        };
        Ok(Names {
            id: id.to_owned(),
            display_name,
            crate_name: format!("dashdice-mode-{id}"),
            lib_name: format!("dashdice_mode_{}", id.replace('-', "_")),
            type_name: type_name(id),
        })
    }

    /// The component, relative to the crate's directory, after
    /// `cargo build --release --target wasm32-wasip2`.
    pub fn component(&self) -> PathBuf {
        [
            "target",
            WASM_TARGET,
            "release",
            &format!("{}.wasm", self.lib_name),
        ]
        .iter()
        .collect()
    }
}

/// A mode id as the catalog accepts it (the catalog's own rule: 1 to 32 of
/// `a-z`, `0-9` and `-`, starting with a letter, which also gives a valid
/// Rust type name).
pub fn valid_id(id: &str) -> bool {
    dashdice_proto::catalog::valid_mode_id(id)
}

fn check_display_name(name: &str) -> Result<String, ScaffoldError> {
    let bad = |why| {
        Err(ScaffoldError::InvalidName {
            name: name.to_owned(),
            why,
        })
    };
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return bad("it is empty");
    }
    if trimmed.chars().count() > MAX_DISPLAY_NAME {
        return bad("it is longer than 64 characters");
    }
    if trimmed.chars().any(char::is_control) {
        return bad("it holds control characters");
    }
    Ok(trimmed.to_owned())
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// `demo-dice` → `DemoDice`; `Mode` is appended when that would clash with
/// a name the template's code uses (`state` → `StateMode`, not `State`).
fn type_name(id: &str) -> String {
    let camel: String = id.split('-').map(capitalise).collect();
    if PRELUDE.contains(&camel.as_str()) || template_identifiers().contains(&camel) {
        camel + "Mode"
    } else {
        camel
    }
}

/// Every identifier-like word in the template's Rust sources except its
/// type's own name (comments included: a few needless `Mode` suffixes are
/// cheaper than a parser).
fn template_identifiers() -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for (path, text) in TEMPLATE_FILES {
        if !path.ends_with(".rs") {
            continue;
        }
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with(|c: char| c.is_ascii_alphabetic()) && word != TEMPLATE_TYPE {
                words.insert(word.to_owned());
            }
        }
    }
    words
}

/// Replaces the template's names with the new mode's, in one pass (so a
/// display name containing "Template" is not replaced again):
/// `dashdice-mode-template` and `dashdice_mode_template` (crate and library),
/// `"template"` and `` `template` `` (the id), `"Template"` (the display
/// name, as a Rust string literal) and the identifier `Template` (the type).
pub fn substitute(text: &str, names: &Names) -> String {
    let replacements = [
        (TEMPLATE_CRATE, names.crate_name.clone()),
        (TEMPLATE_LIB, names.lib_name.clone()),
        (TEMPLATE_ID_QUOTED, format!("\"{}\"", names.id)),
        (TEMPLATE_ID_TICKED, format!("`{}`", names.id)),
        // Debug formatting escapes quotes and backslashes as Rust wants them.
        (TEMPLATE_NAME_QUOTED, format!("{:?}", names.display_name)),
    ];
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    let mut previous: Option<char> = None;
    'scan: while let Some(c) = rest.chars().next() {
        for (from, to) in &replacements {
            if let Some(after) = rest.strip_prefix(from) {
                out.push_str(to);
                previous = from.chars().last();
                rest = after;
                continue 'scan;
            }
        }
        if let Some(after) = rest.strip_prefix(TEMPLATE_TYPE) {
            let starts_word = !previous.is_some_and(is_ident);
            let ends_word = !after.chars().next().is_some_and(is_ident);
            if starts_word && ends_word {
                out.push_str(&names.type_name);
                previous = TEMPLATE_TYPE.chars().last();
                rest = after;
                continue;
            }
        }
        out.push(c);
        previous = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// One file of a new crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Relative to the crate's directory, with `/` separators.
    pub path: String,
    pub contents: String,
}

/// Every file of a new crate for `names`, in memory.
pub fn files(names: &Names) -> Result<Vec<File>, ScaffoldError> {
    let mut files = Vec::new();
    let mut manifest = false;
    for (path, text) in TEMPLATE_FILES {
        let mut contents = substitute(text, names);
        if *path == "Cargo.toml" {
            contents = mode_manifest(&contents, WORKSPACE_MANIFEST)?;
            manifest = true;
        }
        files.push(File {
            path: (*path).to_owned(),
            contents,
        });
    }
    if !manifest {
        return Err(ScaffoldError::Template(
            "plugins/template has no Cargo.toml".into(),
        ));
    }
    for (path, text) in SDK_FILES {
        let contents = match *path {
            "Cargo.toml" => standalone_manifest(text, WORKSPACE_MANIFEST, &[])?,
            "src/guest.rs" => {
                if text.matches(GUEST_WIT_PATH).count() != 1 {
                    return Err(ScaffoldError::Template(format!(
                        "the SDK's guest.rs no longer says `{GUEST_WIT_PATH}` once"
                    )));
                }
                text.replace(GUEST_WIT_PATH, NEW_GUEST_WIT_PATH)
            }
            _ => (*text).to_owned(),
        };
        files.push(File {
            path: format!("{SDK_DIR}/{path}"),
            contents,
        });
    }
    for (path, text) in WIT_FILES {
        files.push(File {
            path: format!("{SDK_DIR}/wit/{path}"),
            contents: (*text).to_owned(),
        });
    }
    for (path, contents) in [
        ("Cargo.lock", WORKSPACE_LOCK),
        ("rust-toolchain.toml", TOOLCHAIN),
        (".clippy.toml", CLIPPY),
    ] {
        files.push(File {
            path: path.to_owned(),
            contents: contents.to_owned(),
        });
    }
    Ok(files)
}

/// Writes `files` below `dir`, which must not exist or be an empty directory
/// (nothing a designer already has is ever overwritten).
pub fn write(dir: &Path, files: &[File]) -> Result<(), ScaffoldError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ScaffoldError::Io { path, source }
    };
    if dir.exists() {
        if !dir.is_dir() {
            return Err(ScaffoldError::NotADirectory(dir.to_owned()));
        }
        if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
            return Err(ScaffoldError::NotEmpty(dir.to_owned()));
        }
    }
    for file in files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, &file.contents).map_err(io(&path))?;
    }
    Ok(())
}

/// A crate `mode new` made.
#[derive(Clone, Debug)]
pub struct Created {
    pub dir: PathBuf,
    pub names: Names,
    pub files: Vec<String>,
}

/// `dashdice mode new <id> [--name NAME] [--path DIR]`: checks the names,
/// makes the files, and writes them into `dir` (default `./<id>`).
pub fn new_mode(
    id: &str,
    display_name: Option<&str>,
    dir: Option<&Path>,
) -> Result<Created, ScaffoldError> {
    let names = Names::new(id, display_name)?;
    let files = files(&names)?;
    let dir = dir.map_or_else(|| PathBuf::from(&names.id), Path::to_path_buf);
    write(&dir, &files)?;
    Ok(Created {
        dir,
        names,
        files: files.into_iter().map(|f| f.path).collect(),
    })
}

// ---------------------------------------------------------------------------
// Manifests
//
// A workspace member's manifest inherits (`version.workspace = true`,
// `serde.workspace = true`, `[lints] workspace = true`); a crate outside the
// workspace must spell everything out. The translation reads the workspace
// manifest rather than repeating its versions here, so a new crate always
// gets the versions this binary was built and tested with. It handles the
// subset of TOML the manifests use (one entry per line) and says so when it
// meets anything else, rather than guessing.
// ---------------------------------------------------------------------------

/// The new crate's manifest: the template's, made standalone, plus an empty
/// `[workspace]` and the release profile of the built-in modes.
fn mode_manifest(template: &str, workspace: &str) -> Result<String, ScaffoldError> {
    let mut out = standalone_manifest(template, workspace, &[("dashdice-mode-sdk", SDK_DIR)])?;
    out.push_str(
        "\n# A workspace of its own, so this crate never joins a workspace around it.\n\
         # The SDK below joins this one (a path dependency inside it).\n\
         [workspace]\n\
         \n\
         # `cargo build --release --target wasm32-wasip2` builds the component with\n\
         # the settings of dashdice's built-in modes (their `mode` profile): the\n\
         # smallest and fastest component. panic = \"abort\" is safe: the SDK never\n\
         # relies on unwinding, and the host reports a panic with its message.\n\
         [profile.release]\n",
    );
    let profile = entries(workspace, "profile.mode")?;
    if profile.is_empty() {
        return Err(ScaffoldError::Template(
            "the workspace has no [profile.mode]".into(),
        ));
    }
    for (key, value) in profile {
        if key != "inherits" {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    Ok(out)
}

/// `member` (a manifest of the workspace whose manifest is `workspace`) with
/// every inherited field and dependency replaced by the workspace's value.
/// `paths` maps workspace path dependencies to where the new crate has them.
fn standalone_manifest(
    member: &str,
    workspace: &str,
    paths: &[(&str, &str)],
) -> Result<String, ScaffoldError> {
    let mut out = String::with_capacity(member.len() + 512);
    let mut table = String::new();
    for line in member.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            table = trimmed.trim_matches(|c| c == '[' || c == ']').to_owned();
            // `[lints]` is written out with the workspace's lint tables.
            if table != "lints" {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        let entry = if trimmed.is_empty() || trimmed.starts_with('#') {
            None
        } else {
            trimmed.split_once('=')
        };
        let Some((key, value)) = entry.map(|(k, v)| (k.trim(), v.trim())) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        if table == "lints" {
            if (key, value) != ("workspace", "true") {
                return Err(ScaffoldError::Template(format!(
                    "[lints] holds {trimmed:?}; only `workspace = true` is supported"
                )));
            }
            out.push_str(&workspace_lints(workspace)?);
        } else if table == "package" && key.ends_with(".workspace") {
            let field = key.trim_end_matches(".workspace");
            let inherited =
                lookup(&entries(workspace, "workspace.package")?, field).ok_or_else(|| {
                    ScaffoldError::Template(format!("the workspace has no package.{field}"))
                })?;
            out.push_str(&format!("{field} = {inherited}\n"));
        } else if is_dependency_table(&table) {
            out.push_str(&dependency(key, value, workspace, paths)?);
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

fn is_dependency_table(table: &str) -> bool {
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .any(|kind| table == *kind || table.ends_with(&format!(".{kind}")))
}

/// One dependency line, made standalone if it inherits from the workspace.
fn dependency(
    key: &str,
    value: &str,
    workspace: &str,
    paths: &[(&str, &str)],
) -> Result<String, ScaffoldError> {
    let (name, extra) = if let Some(name) = key.strip_suffix(".workspace") {
        if value != "true" {
            return Err(ScaffoldError::Template(format!("{key} = {value}")));
        }
        (name, Vec::new())
    } else if value.starts_with('{') {
        let mut pairs = inline_table(value)?;
        let before = pairs.len();
        pairs.retain(|(k, v)| !(k == "workspace" && v == "true"));
        if pairs.len() == before {
            // Not inherited: as written.
            return Ok(format!("{key} = {value}\n"));
        }
        (key, pairs)
    } else {
        return Ok(format!("{key} = {value}\n"));
    };
    let mut spec = match paths.iter().find(|(dep, _)| *dep == name) {
        Some((_, path)) => vec![("path".to_owned(), format!("{path:?}"))],
        None => {
            let inherited = lookup(&entries(workspace, "workspace.dependencies")?, name)
                .ok_or_else(|| {
                    ScaffoldError::Template(format!("the workspace has no dependency {name}"))
                })?;
            if inherited.starts_with('"') {
                vec![("version".to_owned(), inherited)]
            } else {
                inline_table(&inherited)?
            }
        }
    };
    if spec.iter().any(|(k, _)| k == "path") && !paths.iter().any(|(dep, _)| *dep == name) {
        return Err(ScaffoldError::Template(format!(
            "{name} is a workspace crate, out of reach of a standalone crate"
        )));
    }
    for (k, v) in extra {
        match spec.iter_mut().find(|(key, _)| *key == k) {
            // A member adds features to the workspace's.
            Some((_, features)) if k == "features" => {
                let items: Vec<&str> = [features.as_str(), v.as_str()]
                    .iter()
                    .map(|list| list.trim().trim_start_matches('[').trim_end_matches(']'))
                    .map(str::trim)
                    .filter(|items| !items.is_empty())
                    .collect();
                *features = format!("[{}]", items.join(", "));
            }
            Some(_) => {
                return Err(ScaffoldError::Template(format!(
                    "{name}: both the workspace and the member set {k}"
                )));
            }
            None => spec.push((k, v)),
        }
    }
    if let [(key, version)] = spec.as_slice()
        && key == "version"
    {
        return Ok(format!("{name} = {version}\n"));
    }
    let body: Vec<String> = spec.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    Ok(format!("{name} = {{ {} }}\n", body.join(", ")))
}

/// The workspace's `[workspace.lints.*]` tables as a member's `[lints.*]`.
fn workspace_lints(workspace: &str) -> Result<String, ScaffoldError> {
    let mut out = String::new();
    for table in tables(workspace) {
        if let Some(tool) = table.strip_prefix("workspace.lints.") {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[lints.{tool}]\n"));
            for (key, value) in entries(workspace, table)? {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
    }
    Ok(out)
}

/// The names of the tables in `manifest`, in order.
fn tables(manifest: &str) -> Vec<&str> {
    manifest
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']'))
        .collect()
}

/// The `key = value` entries of `[table]` in `manifest`, in order. A value
/// spread over several lines is refused rather than misread.
fn entries(manifest: &str, table: &str) -> Result<Vec<(String, String)>, ScaffoldError> {
    let mut current = "";
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            current = line.trim_matches(|c| c == '[' || c == ']');
            continue;
        }
        if current != table || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ScaffoldError::Template(format!(
                "[{table}]: cannot read {line:?}"
            )));
        };
        let value = value.trim();
        if depth(value) != Some(0) {
            return Err(ScaffoldError::Template(format!(
                "[{table}]: {} spans lines, which is not supported",
                key.trim()
            )));
        }
        found.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok(found)
}

fn lookup(entries: &[(String, String)], key: &str) -> Option<String> {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// The nesting depth of brackets and braces at the end of `value` (strings
/// skipped); `None` if it closes more than it opens.
fn depth(value: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '[' | '{' if !in_string => depth += 1,
            ']' | '}' if !in_string => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    Some(depth)
}

/// `{ a = 1, b = ["x", "y"] }` → `[("a", "1"), ("b", "[\"x\", \"y\"]")]`.
fn inline_table(value: &str) -> Result<Vec<(String, String)>, ScaffoldError> {
    let bad = || ScaffoldError::Template(format!("cannot read the inline table {value}"));
    let inner = value
        .trim()
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut pairs = Vec::new();
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in inner.char_indices() {
        if c == ',' && depth(&inner[start..i]) == Some(0) && !in_open_string(&inner[start..i]) {
            parts.push(&inner[start..i]);
            start = i + 1;
        }
    }
    parts.push(&inner[start..]);
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(bad)?;
        pairs.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(pairs)
}

/// Whether `text` ends inside a string literal.
fn in_open_string(text: &str) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ => {}
        }
    }
    in_string
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Names {
        Names::new("demo-dice", None).unwrap()
    }

    fn file<'a>(files: &'a [File], path: &str) -> &'a str {
        &files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
            .contents
    }

    /// A directory of its own under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("dashdice-scaffold-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn ids() {
        for good in [
            "a",
            "demo-dice",
            "zero-hour",
            "x1",
            "a-b-c-9",
            &"a".repeat(32),
        ] {
            assert!(valid_id(good), "{good}");
        }
        for bad in [
            "",
            &"a".repeat(33),
            "Demo",
            "demo_dice",
            "1dice",
            "-dice",
            "demo dice",
            "demo/dice",
            "../x",
            "dice.",
            "dé",
        ] {
            assert!(!valid_id(bad), "{bad}");
            assert!(matches!(
                Names::new(bad, None),
                Err(ScaffoldError::InvalidId(_))
            ));
        }
    }

    #[test]
    fn names_follow_the_id() {
        assert_eq!(
            demo(),
            Names {
                id: "demo-dice".into(),
                display_name: "Demo Dice".into(),
                crate_name: "dashdice-mode-demo-dice".into(),
                lib_name: "dashdice_mode_demo_dice".into(),
                type_name: "DemoDice".into(),
            }
        );
        assert_eq!(
            demo().component(),
            Path::new("target/wasm32-wasip2/release/dashdice_mode_demo_dice.wasm")
        );
        assert_eq!(Names::new("a1-b2", None).unwrap().type_name, "A1B2");
        assert_eq!(Names::new("x--y", None).unwrap().display_name, "X Y");
    }

    #[test]
    fn type_names_never_clash() {
        // The template's own types, the SDK's, and the prelude's.
        for (id, want) in [
            ("state", "StateMode"),
            ("table", "TableMode"),
            ("rules", "RulesMode"),
            ("vec", "VecMode"),
            ("self", "SelfMode"),
            ("option", "OptionMode"),
        ] {
            assert_eq!(Names::new(id, None).unwrap().type_name, want);
        }
    }

    #[test]
    fn display_names() {
        let names = Names::new("x", Some("  Say \"Hi\" \\o/  ")).unwrap();
        assert_eq!(names.display_name, "Say \"Hi\" \\o/");
        for bad in ["", "   ", "tab\there", &"n".repeat(65)] {
            assert!(
                matches!(
                    Names::new("x", Some(bad)),
                    Err(ScaffoldError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn substitution_is_one_pass_on_whole_words() {
        let names = Names::new("demo-dice", Some("Template \"Two\"")).unwrap();
        let text = "use dashdice_mode_template::Template; [dashdice-mode-template] \
                    const ID = \"template\"; `template` name: \"Template\".into(), \
                    Templates MyTemplate Template_x <Template> template";
        assert_eq!(
            substitute(text, &names),
            "use dashdice_mode_demo_dice::DemoDice; [dashdice-mode-demo-dice] \
             const ID = \"demo-dice\"; `demo-dice` name: \"Template \\\"Two\\\"\".into(), \
             Templates MyTemplate Template_x <DemoDice> template"
        );
    }

    #[test]
    fn the_new_crate_has_every_file_and_no_trace_of_the_template() {
        let files = files(&demo()).unwrap();
        for path in [
            "Cargo.toml",
            "Cargo.lock",
            "rust-toolchain.toml",
            ".gitignore",
            ".clippy.toml",
            "README.md",
            "src/lib.rs",
            "tests/rules.rs",
            "dashdice-mode-sdk/Cargo.toml",
            "dashdice-mode-sdk/src/lib.rs",
            "dashdice-mode-sdk/src/guest.rs",
            "dashdice-mode-sdk/src/testing.rs",
            "dashdice-mode-sdk/wit/mode.wit",
        ] {
            file(&files, path);
        }
        for f in &files {
            if !f.path.starts_with(SDK_DIR) && f.path != "Cargo.lock" {
                assert!(
                    !f.contents.to_lowercase().contains("template"),
                    "{} still says template",
                    f.path
                );
            }
        }
        let lib = file(&files, "src/lib.rs");
        assert!(lib.contains("const ID: &'static str = \"demo-dice\";"));
        assert!(lib.contains("impl Rules for DemoDice"));
        assert!(lib.contains("name: \"Demo Dice\".into()"));
        assert!(lib.contains("export_mode!(DemoDice);"));
        let tests = file(&files, "tests/rules.rs");
        assert!(tests.contains("use dashdice_mode_demo_dice::{"));
        let guest = file(&files, "dashdice-mode-sdk/src/guest.rs");
        assert!(guest.contains("path: \"wit\""));
    }

    #[test]
    fn the_manifests_stand_alone() {
        let files = files(&demo()).unwrap();
        let sdk_version = lookup(
            &entries(WORKSPACE_MANIFEST, "workspace.dependencies").unwrap(),
            "wit-bindgen",
        )
        .unwrap();
        for path in ["Cargo.toml", "dashdice-mode-sdk/Cargo.toml"] {
            let manifest = file(&files, path);
            assert!(!manifest.contains(".workspace"), "{path}:\n{manifest}");
            assert!(
                !manifest.contains("workspace = true"),
                "{path}:\n{manifest}"
            );
            assert!(manifest.contains("edition = \"2024\""), "{path}");
            assert!(manifest.contains("[lints.clippy]"), "{path}");
        }
        let sdk = file(&files, "dashdice-mode-sdk/Cargo.toml");
        assert!(
            sdk.contains(&format!("wit-bindgen = {sdk_version}")),
            "{sdk}"
        );
        assert!(sdk.contains("optional = true }"), "{sdk}");
        let mode = file(&files, "Cargo.toml");
        assert!(mode.contains("name = \"dashdice-mode-demo-dice\""));
        assert!(mode.contains("crate-type = [\"cdylib\", \"rlib\"]"));
        assert!(mode.contains("dashdice-mode-sdk = { path = \"dashdice-mode-sdk\" }"));
        assert!(mode.contains(
            "dashdice-mode-sdk = { path = \"dashdice-mode-sdk\", features = [\"proptest\"] }"
        ));
        assert!(mode.contains("\n[workspace]\n"));
        let profile = mode.split("[profile.release]").nth(1).unwrap();
        for setting in ["lto = true", "codegen-units = 1", "panic = \"abort\""] {
            assert!(profile.contains(setting), "{profile}");
        }
        assert!(!profile.contains("inherits"));
    }

    /// A workspace manifest for the translation tests, independent of the
    /// real one's versions.
    const WORKSPACE: &str = "[workspace]\nmembers = [\n    \"a\",\n]\n\n\
                             [workspace.package]\nedition = \"2024\"\n\n\
                             [workspace.dependencies]\nsdk = { path = \"plugins/sdk\" }\n\
                             other = { path = \"host/other\" }\nbytes = \"1\"\n\
                             serde = { version = \"1.0\", features = [\"derive\"] }\n\
                             postcard = { version = \"1.1\", default-features = false }\n\n\
                             [workspace.lints.rust]\nunsafe_code = \"deny\"\n\n\
                             [workspace.lints.clippy]\nunwrap_used = \"deny\"\n\n\
                             [profile.mode]\ninherits = \"release\"\nlto = true\n";

    #[test]
    fn manifest_translation() {
        let member = "[package]\nname = \"m\"\nedition.workspace = true\n\n\
                      [dependencies]\nbytes.workspace = true\n\
                      postcard = { workspace = true, optional = true }\n\
                      serde = { workspace = true, features = [\"rc\"] }\n\
                      local = { path = \"x\" }\n\
                      [target.'cfg(unix)'.dev-dependencies]\nsdk = { workspace = true, features = [\"p\"] }\n\
                      [lints]\nworkspace = true\n";
        let out = standalone_manifest(member, WORKSPACE, &[("sdk", "the-sdk")]).unwrap();
        assert_eq!(
            out,
            "[package]\nname = \"m\"\nedition = \"2024\"\n\n\
             [dependencies]\nbytes = \"1\"\n\
             postcard = { version = \"1.1\", default-features = false, optional = true }\n\
             serde = { version = \"1.0\", features = [\"derive\", \"rc\"] }\n\
             local = { path = \"x\" }\n\
             [target.'cfg(unix)'.dev-dependencies]\nsdk = { path = \"the-sdk\", features = [\"p\"] }\n\
             [lints.rust]\nunsafe_code = \"deny\"\n\n[lints.clippy]\nunwrap_used = \"deny\"\n"
        );
        let mode = mode_manifest("[package]\nname = \"m\"\n", WORKSPACE).unwrap();
        assert!(mode.ends_with("[workspace]\n\n# `cargo build --release --target wasm32-wasip2` builds the component with\n# the settings of dashdice's built-in modes (their `mode` profile): the\n# smallest and fastest component. panic = \"abort\" is safe: the SDK never\n# relies on unwinding, and the host reports a panic with its message.\n[profile.release]\nlto = true\n"), "{mode}");
        // What it cannot translate, it refuses.
        for bad in [
            "[dependencies]\nno-such-crate.workspace = true\n",
            "[dependencies]\nother.workspace = true\n",
            "[dependencies]\nserde = { workspace = true, version = \"2\" }\n",
            "[package]\nhomepage.workspace = true\n",
            "[lints]\nrust = {}\n",
        ] {
            assert!(
                matches!(
                    standalone_manifest(bad, WORKSPACE, &[]),
                    Err(ScaffoldError::Template(_))
                ),
                "{bad}"
            );
        }
        // Nor does it misread a value spread over lines.
        assert!(entries("[t]\nk = [\n  1,\n]\n", "t").is_err());
    }

    #[test]
    fn inline_tables_and_depth() {
        assert_eq!(
            inline_table(r#"{ a = "x,y", b = ["p", "q"], c = { d = 1 } }"#).unwrap(),
            vec![
                ("a".to_owned(), "\"x,y\"".to_owned()),
                ("b".to_owned(), "[\"p\", \"q\"]".to_owned()),
                ("c".to_owned(), "{ d = 1 }".to_owned()),
            ]
        );
        assert_eq!(depth("[\"a]\""), Some(1));
        assert_eq!(depth("]"), None);
    }

    #[test]
    fn writes_into_a_new_or_empty_directory_only() {
        let dir = scratch("write");
        let created = new_mode("demo-dice", None, Some(&dir)).unwrap();
        assert_eq!(created.dir, dir);
        assert!(dir.join("src/lib.rs").is_file());
        assert!(dir.join("dashdice-mode-sdk/wit/mode.wit").is_file());
        // Again: the directory is no longer empty, and nothing is touched.
        let before = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(matches!(
            new_mode("demo-dice", None, Some(&dir)),
            Err(ScaffoldError::NotEmpty(_))
        ));
        assert_eq!(
            std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(),
            before
        );
        // An empty directory is fine; a file is not.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        new_mode("demo-dice", None, Some(&dir)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, "x").unwrap();
        assert!(matches!(
            new_mode("demo-dice", None, Some(&dir)),
            Err(ScaffoldError::NotADirectory(_))
        ));
        std::fs::remove_file(&dir).unwrap();
    }
}
