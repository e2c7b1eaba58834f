//! `provisioner schema`: the committed JSON Schemas, printed or written into a directory.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Builds one schema.
type Generator = fn() -> Value;

/// Each committed schema's file name and generator, in the order they are written.
pub const FILES: [(&str, Generator); 3] = [
    ("job.schema.json", crate::job::job_schema),
    ("hire-event.schema.json", crate::hire::hire_schema),
    ("result-event.schema.json", crate::event::result_event_schema),
];

/// A schema as it is printed and committed: pretty JSON, with a final newline added by the caller.
pub fn render(schema: &Value) -> String {
    serde_json::to_string_pretty(schema).expect("a schema serialises")
}

/// Writes every schema into `dir` (created if missing); returns the paths written.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    FILES
        .iter()
        .map(|(name, schema)| -> std::io::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, format!("{}\n", render(&schema())))?;
            Ok(path)
        })
        .collect()
}
