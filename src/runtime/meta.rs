//! `meta.properties`: the cluster id and node id this data directory belongs to, written once
//! (temp file, sync, rename, sync dir) so a crash never leaves half of it.

use crate::protocol::primitives::BASE64URL;
use crate::storage::Storage;
use bytes::Bytes;
use std::io;

const FILE: &str = "meta.properties";
const TEMP: &str = "meta.properties.tmp";

pub async fn load_or_create(storage: &dyn Storage, node_id: i32, seed: u64) -> io::Result<String> {
    if let Ok(file) = storage.open(FILE, false).await {
        let len = storage.len(file).await?;
        let data = storage.read_at(file, 0, len as usize).await?;
        storage.close(file).await?;
        let text = String::from_utf8_lossy(&data);
        let props = crate::config::parse_properties(&text).unwrap_or_default();
        let get = |k: &str| {
            props
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        if let Some(stored) = get("node.id").and_then(|v| v.parse::<i32>().ok()) {
            if stored != node_id {
                return Err(io::Error::other(format!(
                    "data directory belongs to node.id={stored}, but this broker is node.id={node_id}"
                )));
            }
        }
        if let Some(id) = get("cluster.id").filter(|id| !id.is_empty()) {
            return Ok(id);
        }
    }
    let cluster_id = cluster_id_from(seed);
    let text = format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
    storage.create_dir_all("").await?;
    let tmp = storage.open(TEMP, true).await?;
    storage.truncate(tmp, 0).await?;
    storage.write_at(tmp, 0, Bytes::from(text)).await?;
    storage.sync_data(tmp).await?;
    storage.close(tmp).await?;
    storage.rename(TEMP, FILE).await?;
    storage.sync_dir("").await?;
    Ok(cluster_id)
}

/// A 22-character URL-safe id like Kafka's (base64 of 16 bytes).
fn cluster_id_from(seed: u64) -> String {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..22)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            BASE64URL[(x % 64) as usize] as char
        })
        .collect()
}
