//! `meta.properties`: the data directory's identity, written once when the directory is new.
//!
//! It holds the node id the directory belongs to and a `directory.id` (a random UUID). A broker
//! registers with its directory id, so the controller can tell a broker that restarted with its
//! disk from one that came back on an empty or replaced disk: the second must not be counted in
//! any ISR, or elected leader, before it has copied the data back. A directory that belongs to
//! another node id is refused, as Kafka refuses it.

use std::io::Write;
use std::path::Path;

use uuid::Uuid;

/// The file's name in the data directory.
pub const FILE: &str = "meta.properties";

/// What `meta.properties` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaProperties {
    /// `node.id`.
    pub node_id: i32,
    /// `directory.id`.
    pub directory_id: Uuid,
}

/// Why the directory's identity could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not what this module writes.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The directory belongs to another broker.
    #[error(
        "{path} says this data directory belongs to node.id {stored}, not {configured}: give each broker its own directory"
    )]
    OtherNode {
        /// The file.
        path: String,
        /// The node id in the file.
        stored: i32,
        /// This broker's.
        configured: i32,
    },
}

/// Reads `dir/meta.properties`, or creates it (durably) with a new directory id when the
/// directory has none yet.
pub fn load_or_create(dir: &Path, node_id: i32) -> Result<MetaProperties, MetaPropertiesError> {
    let path = dir.join(FILE);
    let shown = path.display().to_string();
    let io = |source| MetaPropertiesError::Io {
        path: shown.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let meta = parse(&text).map_err(|reason| MetaPropertiesError::Malformed {
                path: shown.clone(),
                reason,
            })?;
            if meta.node_id != node_id {
                return Err(MetaPropertiesError::OtherNode {
                    path: shown,
                    stored: meta.node_id,
                    configured: node_id,
                });
            }
            Ok(meta)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let meta = MetaProperties {
                node_id,
                directory_id: Uuid::new_v4(),
            };
            let tmp = dir.join(format!("{FILE}.tmp"));
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(render(&meta).as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
            Ok(meta)
        }
        Err(e) => Err(io(e)),
    }
}

fn render(meta: &MetaProperties) -> String {
    format!(
        "# Written by strata when this data directory was new. Do not copy it to another broker.\n\
         version=1\nnode.id={}\ndirectory.id={}\n",
        meta.node_id, meta.directory_id
    )
}

fn parse(text: &str) -> Result<MetaProperties, String> {
    let mut node_id = None;
    let mut directory_id = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line `{line}` is not key=value"));
        };
        match key.trim() {
            "node.id" => {
                node_id = Some(
                    value
                        .trim()
                        .parse::<i32>()
                        .map_err(|e| format!("node.id `{value}`: {e}"))?,
                )
            }
            "directory.id" => {
                directory_id = Some(
                    Uuid::parse_str(value.trim())
                        .map_err(|e| format!("directory.id `{value}`: {e}"))?,
                )
            }
            _ => {}
        }
    }
    Ok(MetaProperties {
        node_id: node_id.ok_or("no node.id")?,
        directory_id: directory_id.ok_or("no directory.id")?,
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// The identity is made once and read back the same; another node id is refused; an
    /// emptied directory gets a new identity.
    #[test]
    fn a_directory_keeps_its_identity_and_refuses_another_node() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), 3).unwrap();
        assert_eq!(load_or_create(dir.path(), 3).unwrap(), first);
        let err = load_or_create(dir.path(), 4).unwrap_err();
        assert!(
            matches!(
                err,
                MetaPropertiesError::OtherNode {
                    stored: 3,
                    configured: 4,
                    ..
                }
            ),
            "{err}"
        );
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        let again = load_or_create(dir.path(), 3).unwrap();
        assert_ne!(again.directory_id, first.directory_id);
        std::fs::write(dir.path().join(FILE), "node.id=3\n").unwrap();
        assert!(matches!(
            load_or_create(dir.path(), 3),
            Err(MetaPropertiesError::Malformed { .. })
        ));
    }
}
