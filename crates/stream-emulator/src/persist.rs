//! `emulator.data_dir`: the emulator's state kept in `DIR/emulator.sqlite3`, one row holding
//! the export document (`GET /_emulator/export`'s), replaced whole in one transaction after
//! every request that changed the store, before its answer is sent. SQLite's atomic commit
//! (WAL, `synchronous=FULL`) means a crash leaves either the previous document or the new
//! one, never half of one.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

/// The file under `emulator.data_dir`.
pub const FILE: &str = "emulator.sqlite3";

/// An open data file.
#[derive(Debug)]
pub struct Persist {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Persist {
    /// Opens (creating it and `dir` if needed) `dir/emulator.sqlite3`, with the document it
    /// holds, if any. Errors name the file.
    pub fn open(dir: &Path) -> Result<(Self, Option<Value>), String> {
        let path = dir.join(FILE);
        let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let conn = Connection::open(&path).map_err(|e| named(&e))?;
        let doc: Option<Vec<u8>> = (|| {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS state \
                 (id INTEGER PRIMARY KEY CHECK (id = 1), doc BLOB NOT NULL)",
            )?;
            conn.query_row("SELECT doc FROM state WHERE id = 1", [], |r| r.get(0))
                .optional()
        })()
        .map_err(|e| named(&e))?;
        let doc = match doc {
            Some(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| named(&format!("the stored state is not JSON: {e}")))?,
            ),
            None => None,
        };
        Ok((
            Self {
                conn: Mutex::new(conn),
                path,
            },
            doc,
        ))
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the stored document with the one `doc` makes, in one transaction; `doc` is
    /// called with the file locked, so writes land in the order their documents were made.
    pub fn write_with(&self, doc: impl FnOnce() -> Option<Value>) -> Result<(), String> {
        let mut conn = self.conn.lock();
        let Some(doc) = doc() else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
        let named = |e: rusqlite::Error| format!("{}: {e}", self.path.display());
        let tx = conn.transaction().map_err(named)?;
        tx.execute(
            "INSERT INTO state (id, doc) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            [bytes],
        )
        .map_err(named)?;
        tx.commit().map_err(named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one, removed when dropped.
    struct TempDir(PathBuf);
    impl TempDir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn tempdir() -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TempDir(std::env::temp_dir().join(format!("emu-persist-{}-{n}", std::process::id())))
    }

    #[test]
    fn a_written_document_is_read_back_when_the_file_is_opened_again() {
        let dir = tempdir();
        let (p, doc) = Persist::open(dir.path()).unwrap();
        assert!(doc.is_none());
        p.write_with(|| Some(serde_json::json!({"version": 1})))
            .unwrap();
        p.write_with(|| None).unwrap();
        p.write_with(|| Some(serde_json::json!({"version": 2})))
            .unwrap();
        drop(p);
        let (p, doc) = Persist::open(dir.path()).unwrap();
        assert_eq!(doc, Some(serde_json::json!({"version": 2})));
        assert!(p.path().ends_with(FILE));
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error_naming_it() {
        let dir = tempdir();
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(
            dir.path().join(FILE),
            b"not sqlite at all, just some text......",
        )
        .unwrap();
        let e = Persist::open(dir.path()).unwrap_err();
        assert!(e.contains(FILE), "{e}");
    }

    #[test]
    fn a_stored_document_that_is_not_json_is_an_error_naming_the_file() {
        let dir = tempdir();
        let (p, _) = Persist::open(dir.path()).unwrap();
        p.conn
            .lock()
            .execute("INSERT INTO state (id, doc) VALUES (1, x'7b7b')", [])
            .unwrap();
        drop(p);
        let e = Persist::open(dir.path()).unwrap_err();
        assert!(e.contains(FILE) && e.contains("not JSON"), "{e}");
    }
}
