//! `partition.metadata`: the topic id a partition directory belongs to, as Kafka writes it
//! (`version: 0`, `topic_id: <base64url id>`).
//!
//! Directories are named by topic name and partition, so a topic deleted and created again gets
//! the directory name of the old one. If the old directory's removal had not reached the disk
//! when the broker crashed, it is back at the next start; the topic id in this file tells it apart
//! from the new topic's log, and recovery removes it instead of serving its records.

use super::LogFiles;
use crate::protocol::primitives::Uuid;
use bytes::Bytes;
use std::io;

pub const FILE: &str = "partition.metadata";

/// Most reads of the file while waiting for two that agree (a flipped bit on one read must not
/// make a log look like another topic's and get it removed).
const READS: usize = 5;

/// What a partition directory's `partition.metadata` says about its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No file (a log from before gregor wrote one, or a directory that holds nothing yet).
    Unknown,
    /// A well-formed file naming this topic id (base64url).
    Topic(String),
    /// A file that does not parse: kept data is trusted to the metadata log, and the file is
    /// written again.
    Unreadable,
}

/// The file's text for `id`.
pub fn text(id: Uuid) -> String {
    format!("version: 0\ntopic_id: {}\n", id.to_base64url())
}

/// Parses the file: `version: 0` and a 22-character base64url `topic_id`, nothing else.
pub fn parse(data: &[u8]) -> Owner {
    let Ok(text) = std::str::from_utf8(data) else {
        return Owner::Unreadable;
    };
    let mut version = None;
    let mut topic_id = None;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        match line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("version", v)) if version.is_none() => version = Some(v),
            Some(("topic_id", v)) if topic_id.is_none() => topic_id = Some(v),
            _ => return Owner::Unreadable,
        }
    }
    let well_formed = |id: &str| {
        id.len() == 22
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match (version, topic_id) {
        (Some("0"), Some(id)) if well_formed(id) => Owner::Topic(id.to_owned()),
        _ => Owner::Unreadable,
    }
}

impl LogFiles {
    fn owner_path(&self) -> String {
        format!("{}/{FILE}", self.dir)
    }

    /// Writes `partition.metadata` for `topic_id` and makes it durable (file and directory).
    pub async fn write_owner(&mut self, topic_id: Uuid) -> io::Result<()> {
        self.ensure_dir().await?;
        let path = self.owner_path();
        let file = self.storage.open(&path, true).await?;
        let written = async {
            self.storage.truncate(file, 0).await?;
            self.storage
                .write_at(file, 0, Bytes::from(text(topic_id)))
                .await?;
            self.storage.sync_data(file).await
        }
        .await;
        let closed = self.storage.close(file).await;
        written.and(closed)?;
        self.storage.sync_dir(&self.dir).await
    }

    /// Reads `partition.metadata` until two reads agree.
    pub(super) async fn read_owner(&mut self) -> io::Result<Owner> {
        let path = self.owner_path();
        let mut last: Option<Bytes> = None;
        for _ in 0..READS {
            let data = match self.read_file(&path).await {
                Ok(data) => data,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Owner::Unknown),
                Err(e) => return Err(e),
            };
            if last.as_ref() == Some(&data) {
                break;
            }
            last = Some(data);
        }
        Ok(last.map_or(Owner::Unknown, |data| parse(&data)))
    }

    /// Makes sure this directory holds `topic_id`'s log before recovery opens it. A directory
    /// another topic id owns (an earlier incarnation of the same name) is removed, durably, so
    /// the log starts empty; a directory with no owner (or an unreadable one) is claimed.
    pub async fn claim(&mut self, topic_id: Uuid) -> io::Result<()> {
        let expected = topic_id.to_base64url();
        match self.read_owner().await? {
            Owner::Topic(id) if id == expected => return Ok(()),
            Owner::Topic(other) => {
                tracing::warn!(
                    dir = %self.dir,
                    found = %other,
                    expected = %expected,
                    "removing the log of an earlier topic with this name"
                );
                self.close_all().await;
                self.storage.remove_dir_all(&self.dir).await?;
                self.storage
                    .sync_dir(crate::storage::parent(&self.dir))
                    .await?;
                self.dir_ready = false;
            }
            Owner::Unknown | Owner::Unreadable => {}
        }
        self.write_owner(topic_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_written_as_kafka_writes_them() {
        // Kafka's Uuid.toString of 0x00..01 is "AAAAAAAAAAAAAAAAAAAAAQ".
        let mut id = [0u8; 16];
        id[15] = 1;
        assert_eq!(Uuid(id).to_base64url(), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(Uuid([0xff; 16]).to_base64url(), "_____________________w");
        assert_eq!(
            text(Uuid(id)),
            "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ\n"
        );
    }

    #[test]
    fn parsing_accepts_only_the_exact_form() {
        let id = Uuid([7; 16]);
        assert_eq!(parse(text(id).as_bytes()), Owner::Topic(id.to_base64url()));
        for bad in [
            "",
            "version: 0\n",
            "version: 1\ntopic_id: BwcHBwcHBwcHBwcHBwcHBw\n",
            "version: 0\ntopic_id: short\n",
            "version: 0\ntopic_id: BwcHBwcHBwcHBwcHBwcHBw\nextra: 1\n",
            "version: 0\ntopic_id: BwcHBwcHBwcH+wcHBwcHBw\n",
        ] {
            assert_eq!(parse(bad.as_bytes()), Owner::Unreadable, "{bad:?}");
        }
        assert_eq!(parse(&[0xff, 0xfe]), Owner::Unreadable);
    }
}
