//! [`Store`] on SQLite: WAL, foreign keys, numbered migrations, one writer
//! connection and a few readers.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use super::{AttachmentRecord, DiskRecord, DiskSpec, Page, SandboxRecord, Store, StoreError, VaultState};
use crate::vault::{SealedCredentials, VaultError};

/// Numbered schema migrations; each runs once, in its own transaction.
/// Never edit a released one: add the next number.
const MIGRATIONS: &[(u32, &str)] = &[(
    1,
    r#"
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE disks (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id),
    name                TEXT NOT NULL,
    kind                TEXT NOT NULL,
    bucket              TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    region              TEXT,
    use_path_style      INTEGER,
    provider_requested  TEXT,
    options             TEXT NOT NULL DEFAULT '[]',
    provider            TEXT NOT NULL,
    resolved_region     TEXT NOT NULL,
    resolved_path_style INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
) STRICT;

CREATE TABLE disk_credentials (
    disk_id      TEXT PRIMARY KEY REFERENCES disks(id) ON DELETE CASCADE,
    key_version  INTEGER NOT NULL,
    sealed       BLOB NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE vault_state (
    singleton        INTEGER PRIMARY KEY CHECK (singleton = 1),
    current_version  INTEGER NOT NULL
) STRICT;

CREATE TABLE vault_key_checks (
    version  INTEGER PRIMARY KEY,
    checks   BLOB NOT NULL
) STRICT;

CREATE TABLE sandboxes (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('creating','running','stopped','failed','destroyed')),
    root        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
) STRICT;

-- Both foreign keys carry the tenant: a sandbox can only hold its own
-- tenant's disks, enforced by the database itself.
CREATE TABLE attachments (
    tenant_id     TEXT NOT NULL,
    sandbox_id    TEXT NOT NULL,
    disk_id       TEXT NOT NULL,
    mount_path    TEXT NOT NULL,
    sub_path      TEXT NOT NULL DEFAULT '',
    read_only     INTEGER NOT NULL DEFAULT 0,
    mount_status  TEXT NOT NULL CHECK (mount_status IN ('pending','mounted','error','unmounting')),
    mount_error   TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (sandbox_id, mount_path),
    FOREIGN KEY (tenant_id, sandbox_id) REFERENCES sandboxes(tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, disk_id) REFERENCES disks(tenant_id, id)
) STRICT;
CREATE INDEX attachments_by_disk ON attachments(disk_id);
"#,
)];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;

const READERS: usize = 4;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    path: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn is_constraint(e: &rusqlite::Error, ext: i32) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation && f.extended_code == ext)
}

const UNIQUE: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE;
const PRIMARY_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
const FOREIGN_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY;

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
        .map_err(db_err)?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, switches it to
    /// WAL and runs pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Database(format!("creating {}: {e}", dir.display())))?;
        }
        if !path.exists() {
            // SQLite gives its -wal and -shm files the database file's mode.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::Database(format!("creating {}: {e}", path.display())))?;
        }
        let mut writer = Connection::open(path).map_err(db_err)?;
        writer.pragma_update(None, "journal_mode", "WAL").map_err(db_err)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open_with_flags(path, flags).map_err(db_err)?;
                configure(&c)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            path: path.display().to_string(),
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reader connection: the first free one, else wait on one in turn.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        for r in &self.readers {
            if let Ok(g) = r.try_lock() {
                return g;
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT;")
        .map_err(db_err)?;
    let current: u32 = conn
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .map_err(db_err)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        // Another process may have migrated meanwhile.
        let done: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        if !done {
            tx.execute_batch(sql)
                .map_err(|e| StoreError::Database(format!("migration {version}: {e}")))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, now_ms()],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        tracing::debug!(version, "applied schema migration");
    }
    Ok(())
}

const DISK_COLUMNS: &str =
    "id, tenant_id, name, kind, bucket, endpoint, region, use_path_style, provider_requested, options, \
     provider, resolved_region, resolved_path_style, created_at, updated_at";

fn disk_from_row(r: &Row<'_>) -> rusqlite::Result<DiskRecord> {
    let options: String = r.get(9)?;
    let options: Vec<(String, String)> = serde_json::from_str(&options)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(9, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(DiskRecord {
        id: r.get(0)?,
        tenant: r.get(1)?,
        name: r.get(2)?,
        kind: r.get(3)?,
        spec: DiskSpec {
            bucket: r.get(4)?,
            endpoint: r.get(5)?,
            region: r.get(6)?,
            use_path_style: r.get(7)?,
            provider: r.get(8)?,
            options,
        },
        provider: r.get(10)?,
        resolved_region: r.get(11)?,
        resolved_path_style: r.get(12)?,
        created_at_ms: r.get(13)?,
        updated_at_ms: r.get(14)?,
    })
}

const SANDBOX_COLUMNS: &str = "id, tenant_id, name, status, root, created_at";

fn sandbox_from_row(r: &Row<'_>) -> rusqlite::Result<SandboxRecord> {
    Ok(SandboxRecord {
        id: r.get(0)?,
        tenant: r.get(1)?,
        name: r.get(2)?,
        status: r.get(3)?,
        root: r.get(4)?,
        created_at_ms: r.get(5)?,
    })
}

const ATTACHMENT_COLUMNS: &str =
    "tenant_id, sandbox_id, disk_id, mount_path, sub_path, read_only, mount_status, mount_error, created_at";

fn attachment_from_row(r: &Row<'_>) -> rusqlite::Result<AttachmentRecord> {
    Ok(AttachmentRecord {
        tenant: r.get(0)?,
        sandbox_id: r.get(1)?,
        disk_id: r.get(2)?,
        mount_path: r.get(3)?,
        sub_path: r.get(4)?,
        read_only: r.get(5)?,
        mount_status: r.get(6)?,
        mount_error: r.get(7)?,
        created_at_ms: r.get(8)?,
    })
}

/// Refuses a seal made under a key version older than the current one.
fn check_key_version(tx: &rusqlite::Transaction<'_>, sealed: u32) -> Result<(), StoreError> {
    let current: Option<u32> = tx
        .query_row("SELECT current_version FROM vault_state WHERE singleton = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_err)?;
    match current {
        Some(current) if current != sealed => Err(StoreError::StaleKeyVersion { sealed, current }),
        _ => Ok(()),
    }
}

fn ensure_tenant(tx: &rusqlite::Transaction<'_>, tenant: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR IGNORE INTO tenants (id, created_at) VALUES (?1, ?2)",
        params![tenant, now_ms()],
    )
    .map_err(db_err)?;
    Ok(())
}

/// The `WHERE` clause matching an id or a name.
fn id_or_name_column(id_or_name: &str, id_prefix: &str) -> &'static str {
    if id_or_name.starts_with(id_prefix) {
        "id"
    } else {
        "name"
    }
}

impl Store for SqliteStore {
    fn create_disk(&self, d: &DiskRecord, creds: &SealedCredentials) -> Result<(), StoreError> {
        let options = serde_json::to_string(&d.spec.options).map_err(|e| StoreError::Database(e.to_string()))?;
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        check_key_version(&tx, creds.key_version)?;
        ensure_tenant(&tx, &d.tenant)?;
        let inserted = tx.execute(
            &format!("INSERT INTO disks ({DISK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
            params![
                d.id,
                d.tenant,
                d.name,
                d.kind,
                d.spec.bucket,
                d.spec.endpoint,
                d.spec.region,
                d.spec.use_path_style,
                d.spec.provider,
                options,
                d.provider,
                d.resolved_region,
                d.resolved_path_style,
                d.created_at_ms,
                d.updated_at_ms
            ],
        );
        match inserted {
            Err(e) if is_constraint(&e, UNIQUE) || is_constraint(&e, PRIMARY_KEY) => {
                return Err(StoreError::Conflict(format!("a disk named {:?} exists", d.name)))
            }
            r => r.map_err(db_err)?,
        };
        tx.execute(
            "INSERT INTO disk_credentials (disk_id, key_version, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)",
            params![d.id, creds.key_version, creds.blob, d.created_at_ms],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    fn find_disk(&self, tenant: &str, id_or_name: &str) -> Result<Option<DiskRecord>, StoreError> {
        let col = id_or_name_column(id_or_name, "disk_");
        self.reader()
            .prepare_cached(&format!(
                "SELECT {DISK_COLUMNS} FROM disks WHERE tenant_id = ?1 AND {col} = ?2"
            ))
            .and_then(|mut s| s.query_row(params![tenant, id_or_name], disk_from_row).optional())
            .map_err(db_err)
    }

    fn list_disks(&self, tenant: &str, page: Page) -> Result<(Vec<DiskRecord>, u64), StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(db_err)?;
        let total: u64 = tx
            .query_row("SELECT COUNT(*) FROM disks WHERE tenant_id = ?1", [tenant], |r| {
                r.get(0)
            })
            .map_err(db_err)?;
        let rows = tx
            .prepare_cached(&format!(
                "SELECT {DISK_COLUMNS} FROM disks WHERE tenant_id = ?1 ORDER BY created_at, id LIMIT ?2 OFFSET ?3"
            ))
            .and_then(|mut s| {
                s.query_map(params![tenant, page.limit, page.offset as i64], disk_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(db_err)?;
        drop(tx);
        Ok((rows, total))
    }

    fn sealed_credentials(&self, tenant: &str, disk_id: &str) -> Result<Option<SealedCredentials>, StoreError> {
        self.reader()
            .query_row(
                "SELECT c.key_version, c.sealed FROM disk_credentials c JOIN disks d ON d.id = c.disk_id \
                 WHERE d.tenant_id = ?1 AND d.id = ?2",
                params![tenant, disk_id],
                |r| {
                    Ok(SealedCredentials {
                        key_version: r.get(0)?,
                        blob: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(db_err)
    }

    fn replace_credentials(
        &self,
        tenant: &str,
        disk_id: &str,
        creds: &SealedCredentials,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        check_key_version(&tx, creds.key_version)?;
        let n = tx
            .execute(
                "UPDATE disks SET updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, disk_id, now],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.execute(
            "UPDATE disk_credentials SET key_version = ?2, sealed = ?3, updated_at = ?4 WHERE disk_id = ?1",
            params![disk_id, creds.key_version, creds.blob, now],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    fn delete_disk(&self, tenant: &str, disk_id: &str) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let attached: u64 = tx
            .query_row(
                "SELECT COUNT(*) FROM attachments WHERE tenant_id = ?1 AND disk_id = ?2",
                params![tenant, disk_id],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        if attached > 0 {
            return Err(StoreError::Attached(attached));
        }
        let n = tx
            .execute(
                "DELETE FROM disks WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, disk_id],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().map_err(db_err)
    }

    fn vault_state(&self) -> Result<Option<VaultState>, StoreError> {
        let conn = self.writer();
        read_vault_state(&conn)
    }

    fn init_vault(&self, version: u32, check: &[u8]) -> Result<VaultState, StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        if let Some(state) = read_vault_state(&tx)? {
            return Ok(state);
        }
        tx.execute(
            "INSERT INTO vault_state (singleton, current_version) VALUES (1, ?1)",
            [version],
        )
        .map_err(db_err)?;
        tx.execute(
            "INSERT INTO vault_key_checks (version, checks) VALUES (?1, ?2)",
            params![version, check],
        )
        .map_err(db_err)?;
        let state = read_vault_state(&tx)?.ok_or_else(|| StoreError::Database("vault state vanished".into()))?;
        tx.commit().map_err(db_err)?;
        Ok(state)
    }

    fn rotate_key(
        &self,
        new_version: u32,
        check: &[u8],
        reseal: &mut dyn FnMut(&str, &str, &SealedCredentials) -> Result<SealedCredentials, VaultError>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let rows: Vec<(String, String, SealedCredentials)> = tx
            .prepare(
                "SELECT d.tenant_id, d.id, c.key_version, c.sealed FROM disk_credentials c JOIN disks d ON d.id = c.disk_id ORDER BY d.id",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, SealedCredentials { key_version: r.get(2)?, blob: r.get(3)? })))?
                    .collect()
            })
            .map_err(db_err)?;
        let now = now_ms();
        for (tenant, disk_id, sealed) in &rows {
            let new = reseal(tenant, disk_id, sealed).map_err(|source| StoreError::Reseal {
                disk_id: disk_id.clone(),
                source,
            })?;
            tx.execute(
                "UPDATE disk_credentials SET key_version = ?2, sealed = ?3, updated_at = ?4 WHERE disk_id = ?1",
                params![disk_id, new.key_version, new.blob, now],
            )
            .map_err(db_err)?;
        }
        tx.execute(
            "INSERT INTO vault_state (singleton, current_version) VALUES (1, ?1) \
             ON CONFLICT (singleton) DO UPDATE SET current_version = excluded.current_version",
            [new_version],
        )
        .map_err(db_err)?;
        tx.execute("DELETE FROM vault_key_checks", []).map_err(db_err)?;
        tx.execute(
            "INSERT INTO vault_key_checks (version, checks) VALUES (?1, ?2)",
            params![new_version, check],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(rows.len())
    }

    fn create_sandbox(&self, s: &SandboxRecord) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        ensure_tenant(&tx, &s.tenant)?;
        match tx.execute(
            &format!("INSERT INTO sandboxes ({SANDBOX_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            params![s.id, s.tenant, s.name, s.status, s.root, s.created_at_ms],
        ) {
            Err(e) if is_constraint(&e, UNIQUE) || is_constraint(&e, PRIMARY_KEY) => {
                Err(StoreError::Conflict(format!("a sandbox named {:?} exists", s.name)))
            }
            r => r.map(drop).map_err(db_err),
        }?;
        tx.commit().map_err(db_err)
    }

    fn find_sandbox(&self, tenant: &str, id_or_name: &str) -> Result<Option<SandboxRecord>, StoreError> {
        // Ids may be chosen by the caller, so both columns are searched;
        // an id wins over another sandbox's equal name.
        self.reader()
            .prepare_cached(&format!(
                "SELECT {SANDBOX_COLUMNS} FROM sandboxes WHERE tenant_id = ?1 AND (id = ?2 OR name = ?2) ORDER BY id = ?2 DESC LIMIT 1"
            ))
            .and_then(|mut s| s.query_row(params![tenant, id_or_name], sandbox_from_row).optional())
            .map_err(db_err)
    }

    fn sandbox_id_taken(&self, id: &str) -> Result<bool, StoreError> {
        self.reader()
            .prepare_cached("SELECT 1 FROM sandboxes WHERE id = ?1")
            .and_then(|mut s| s.exists([id]))
            .map_err(db_err)
    }

    fn list_sandboxes(&self, tenant: &str, page: Page) -> Result<(Vec<SandboxRecord>, u64), StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(db_err)?;
        let total: u64 = tx
            .query_row("SELECT COUNT(*) FROM sandboxes WHERE tenant_id = ?1", [tenant], |r| {
                r.get(0)
            })
            .map_err(db_err)?;
        let rows = tx
            .prepare_cached(&format!(
                "SELECT {SANDBOX_COLUMNS} FROM sandboxes WHERE tenant_id = ?1 ORDER BY created_at, id LIMIT ?2 OFFSET ?3"
            ))
            .and_then(|mut s| {
                s.query_map(params![tenant, page.limit, page.offset as i64], sandbox_from_row)?.collect::<Result<Vec<_>, _>>()
            })
            .map_err(db_err)?;
        drop(tx);
        Ok((rows, total))
    }

    fn set_sandbox_status(&self, tenant: &str, sandbox_id: &str, status: &str) -> Result<(), StoreError> {
        let n = self
            .writer()
            .execute(
                "UPDATE sandboxes SET status = ?3 WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, sandbox_id, status],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn delete_sandbox(&self, tenant: &str, sandbox_id: &str) -> Result<(), StoreError> {
        let n = self
            .writer()
            .execute(
                "DELETE FROM sandboxes WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, sandbox_id],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn create_attachment(&self, a: &AttachmentRecord) -> Result<(), StoreError> {
        let r = self.writer().execute(
            &format!("INSERT INTO attachments ({ATTACHMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                a.tenant,
                a.sandbox_id,
                a.disk_id,
                a.mount_path,
                a.sub_path,
                a.read_only,
                a.mount_status,
                a.mount_error,
                a.created_at_ms
            ],
        );
        match r {
            Err(e) if is_constraint(&e, PRIMARY_KEY) || is_constraint(&e, UNIQUE) => {
                Err(StoreError::Conflict(format!("mount path {} is in use", a.mount_path)))
            }
            Err(e) if is_constraint(&e, FOREIGN_KEY) => Err(StoreError::NotFound),
            r => r.map(drop).map_err(db_err),
        }
    }

    fn list_attachments(
        &self,
        tenant: &str,
        sandbox_id: &str,
        page: Page,
    ) -> Result<(Vec<AttachmentRecord>, u64), StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(db_err)?;
        let total: u64 = tx
            .query_row(
                "SELECT COUNT(*) FROM attachments WHERE tenant_id = ?1 AND sandbox_id = ?2",
                params![tenant, sandbox_id],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        let rows = tx
            .prepare_cached(&format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE tenant_id = ?1 AND sandbox_id = ?2 \
                 ORDER BY created_at, mount_path LIMIT ?3 OFFSET ?4"
            ))
            .and_then(|mut s| {
                s.query_map(
                    params![tenant, sandbox_id, page.limit, page.offset as i64],
                    attachment_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(db_err)?;
        drop(tx);
        Ok((rows, total))
    }

    fn set_attachment_status(
        &self,
        tenant: &str,
        sandbox_id: &str,
        mount_path: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self
            .writer()
            .execute(
                "UPDATE attachments SET mount_status = ?4, mount_error = ?5 WHERE tenant_id = ?1 AND sandbox_id = ?2 AND mount_path = ?3",
                params![tenant, sandbox_id, mount_path, status, error],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn delete_attachment(
        &self,
        tenant: &str,
        sandbox_id: &str,
        disk_id: &str,
        mount_path: &str,
    ) -> Result<(), StoreError> {
        let n = self
            .writer()
            .execute(
                "DELETE FROM attachments WHERE tenant_id = ?1 AND sandbox_id = ?2 AND disk_id = ?3 AND mount_path = ?4",
                params![tenant, sandbox_id, disk_id, mount_path],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn all_attachments(&self) -> Result<Vec<AttachmentRecord>, StoreError> {
        self.reader()
            .prepare(&format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments ORDER BY created_at"
            ))
            .and_then(|mut s| s.query_map([], attachment_from_row)?.collect())
            .map_err(db_err)
    }
}

fn read_vault_state(conn: &Connection) -> Result<Option<VaultState>, StoreError> {
    let current: Option<u32> = conn
        .query_row("SELECT current_version FROM vault_state WHERE singleton = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_err)?;
    let Some(current_version) = current else {
        return Ok(None);
    };
    let checks = conn
        .prepare("SELECT version, checks FROM vault_key_checks ORDER BY version")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(db_err)?;
    Ok(Some(VaultState {
        current_version,
        checks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(tenant: &str, id: &str, name: &str) -> DiskRecord {
        DiskRecord {
            id: id.into(),
            tenant: tenant.into(),
            name: name.into(),
            kind: "s3".into(),
            spec: DiskSpec {
                bucket: "b".into(),
                endpoint: "http://127.0.0.1:9000".into(),
                region: None,
                use_path_style: Some(true),
                provider: None,
                options: vec![("k".into(), "v".into())],
            },
            provider: "minio".into(),
            resolved_region: "us-east-1".into(),
            resolved_path_style: true,
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    fn sealed(v: u32) -> SealedCredentials {
        SealedCredentials {
            key_version: v,
            blob: vec![1, 2, 3],
        }
    }

    fn page(limit: u32, offset: u64) -> Page {
        Page { limit, offset }
    }

    #[test]
    fn disks_are_per_tenant_and_transactional() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
        s.init_vault(1, b"check").unwrap();
        s.create_disk(&disk("alice", "disk_A", "data"), &sealed(1)).unwrap();
        assert!(matches!(
            s.create_disk(&disk("alice", "disk_B", "data"), &sealed(1)),
            Err(StoreError::Conflict(_))
        ));
        // Nothing of the failed insert is left.
        assert_eq!(s.list_disks("alice", page(10, 0)).unwrap().1, 1);
        s.create_disk(&disk("bob", "disk_B", "data"), &sealed(1)).unwrap();
        assert_eq!(s.find_disk("alice", "data").unwrap().unwrap().id, "disk_A");
        assert_eq!(
            s.find_disk("alice", "disk_A").unwrap().unwrap(),
            disk("alice", "disk_A", "data")
        );
        assert!(s.find_disk("bob", "disk_A").unwrap().is_none());
        assert!(s.sealed_credentials("bob", "disk_A").unwrap().is_none());
        assert!(matches!(s.delete_disk("bob", "disk_A"), Err(StoreError::NotFound)));
        assert!(matches!(
            s.create_disk(&disk("alice", "disk_C", "other"), &sealed(0)),
            Err(StoreError::StaleKeyVersion { sealed: 0, current: 1 })
        ));
        s.delete_disk("alice", "disk_A").unwrap();
        assert!(s.sealed_credentials("alice", "disk_A").unwrap().is_none());
    }

    #[test]
    fn pagination_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let s = SqliteStore::open(&path).unwrap();
            for i in 0..7 {
                let mut d = disk("t", &format!("disk_{i}"), &format!("d{i}"));
                d.created_at_ms = i;
                s.create_disk(&d, &sealed(1)).unwrap();
            }
        }
        let s = SqliteStore::open(&path).unwrap();
        let (rows, total) = s.list_disks("t", page(3, 5)).unwrap();
        assert_eq!(total, 7);
        assert_eq!(rows.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["d5", "d6"]);
    }

    #[test]
    fn rotation_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
        s.init_vault(1, b"c1").unwrap();
        s.create_disk(&disk("t", "disk_1", "a"), &sealed(1)).unwrap();
        s.create_disk(&disk("t", "disk_2", "b"), &sealed(1)).unwrap();
        let err = s.rotate_key(2, b"c2", &mut |_, id, _| {
            if id == "disk_2" {
                Err(VaultError::Tampered { disk_id: id.into() })
            } else {
                Ok(sealed(2))
            }
        });
        assert!(matches!(err, Err(StoreError::Reseal { .. })));
        assert_eq!(s.sealed_credentials("t", "disk_1").unwrap().unwrap().key_version, 1);
        assert_eq!(s.vault_state().unwrap().unwrap().current_version, 1);
        assert_eq!(s.rotate_key(2, b"c2", &mut |_, _, _| Ok(sealed(2))).unwrap(), 2);
        let st = s.vault_state().unwrap().unwrap();
        assert_eq!((st.current_version, st.checks), (2, vec![(2, b"c2".to_vec())]));
        assert!(matches!(
            s.replace_credentials("t", "disk_1", &sealed(1), 5),
            Err(StoreError::StaleKeyVersion { .. })
        ));
    }

    #[test]
    fn attachments_keep_tenancy_and_block_disk_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
        s.create_disk(&disk("alice", "disk_A", "data"), &sealed(1)).unwrap();
        s.create_disk(&disk("bob", "disk_B", "data"), &sealed(1)).unwrap();
        let sb = SandboxRecord {
            id: "sb_1".into(),
            tenant: "alice".into(),
            name: "one".into(),
            status: "running".into(),
            root: "/tmp/x".into(),
            created_at_ms: 1,
        };
        s.create_sandbox(&sb).unwrap();
        let att = |disk: &str, path: &str| AttachmentRecord {
            tenant: "alice".into(),
            sandbox_id: "sb_1".into(),
            disk_id: disk.into(),
            mount_path: path.into(),
            sub_path: String::new(),
            read_only: false,
            mount_status: "pending".into(),
            mount_error: None,
            created_at_ms: 1,
        };
        // Bob's disk cannot be attached to Alice's sandbox.
        assert!(matches!(
            s.create_attachment(&att("disk_B", "/mnt/a")),
            Err(StoreError::NotFound)
        ));
        s.create_attachment(&att("disk_A", "/mnt/a")).unwrap();
        assert!(matches!(
            s.create_attachment(&att("disk_A", "/mnt/a")),
            Err(StoreError::Conflict(_))
        ));
        s.set_attachment_status("alice", "sb_1", "/mnt/a", "mounted", None)
            .unwrap();
        assert_eq!(
            s.list_attachments("alice", "sb_1", page(10, 0)).unwrap().0[0].mount_status,
            "mounted"
        );
        assert!(matches!(s.delete_disk("alice", "disk_A"), Err(StoreError::Attached(1))));
        s.delete_sandbox("alice", "sb_1").unwrap();
        assert!(s.all_attachments().unwrap().is_empty());
        s.delete_disk("alice", "disk_A").unwrap();
    }
}
