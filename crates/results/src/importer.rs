//! Orders for BIOMERO.importer (docs/contracts.md#biomeroimporters-orders), written the way its own
//! clients write them, and followed until the importer is done.
//!
//! `imports` is an append-only log: an order is a new row with stage
//! `Import Pending`; the importer appends `Import Started`, then
//! `Import Completed` or `Import Failed` (with a `description`) under the same
//! uuid. An order's uuid is derived from the submission and the result set
//! (UUID v5), so a step interrupted after the insert finds its row on the next
//! run and never orders the same results twice.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::Row;
use uuid::Uuid;

use crate::classify::ItemKind;
use crate::error::{Result, ResultsError};
use crate::keep::ResultManifest;
pub use stage_config::pathmap::PathMap;

/// The stage of a new order.
pub const STAGE_PENDING: &str = "Import Pending";
/// The stage the importer writes when it picks an order up.
pub const STAGE_STARTED: &str = "Import Started";
/// The stage of a finished order.
pub const STAGE_COMPLETED: &str = "Import Completed";
/// The stage of a failed order.
pub const STAGE_FAILED: &str = "Import Failed";

/// The namespace of order uuids (UUID v5 of `biomero-stage` in the URL namespace).
fn namespace() -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        b"https://github.com/biomero-stage/biomero-stage/imports",
    )
}

/// Where the results are imported in OMERO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DestinationType {
    /// A Dataset (images).
    Dataset,
    /// A Screen (plates).
    Screen,
}

impl DestinationType {
    /// The value in `destination_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationType::Dataset => "Dataset",
            DestinationType::Screen => "Screen",
        }
    }
}

/// One order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's uuid.
    pub uuid: String,
    /// What it imports: `plates`, `images` or `labels`.
    pub set: String,
    /// OMERO group name.
    pub group: String,
    /// OMERO user name.
    pub user: String,
    /// Dataset or Screen.
    pub destination_type: DestinationType,
    /// Its id.
    pub destination_id: i64,
    /// Absolute paths as the importer sees them.
    pub files: Vec<String>,
    /// Their base names.
    pub file_names: Vec<String>,
}

/// How the orders of one result are made.
#[derive(Debug, Clone)]
pub struct OrderRules<'a> {
    /// OMERO group name.
    pub group: &'a str,
    /// OMERO user name.
    pub user: &'a str,
    /// The Dataset images go to.
    pub dataset: Option<i64>,
    /// The Screen plates go to.
    pub screen: Option<i64>,
    /// Order only the label images when there are any (BIOMERO's `Import_Only_Labels`).
    pub only_labels: bool,
    /// Path rewriting for the importer.
    pub paths: &'a PathMap,
}

/// The orders for a kept result: one per result set (plates → Screen; images
/// → Dataset; label images instead of, or besides, what holds them).
pub fn orders_for(
    submission: &str,
    m: &ResultManifest,
    rules: &OrderRules<'_>,
) -> Result<Vec<Order>> {
    let abs = |rel: &str| rules.paths.apply(&m.dir.join(rel));
    let plates: Vec<&crate::classify::Item> = m.items_of(ItemKind::Plate).collect();
    let images: Vec<&crate::classify::Item> = m
        .items
        .iter()
        .filter(|i| matches!(i.kind, ItemKind::ZarrImage | ItemKind::ImageFile))
        .collect();
    let mut sets: Vec<(&str, DestinationType, Vec<String>)> = Vec::new();
    for (holders, dest, name) in [
        (&plates, DestinationType::Screen, "plates"),
        (&images, DestinationType::Dataset, "images"),
    ] {
        if holders.is_empty() {
            continue;
        }
        let labels: Vec<String> = holders
            .iter()
            .flat_map(|i| i.labels.iter().map(|l| abs(l)))
            .collect();
        if labels.is_empty() || !rules.only_labels {
            sets.push((name, dest, holders.iter().map(|i| abs(&i.path)).collect()));
        }
        if !labels.is_empty() {
            let set = if name == "plates" {
                "plate-labels"
            } else {
                "labels"
            };
            sets.push((set, dest, labels));
        }
    }
    let mut orders = Vec::new();
    for (set, dest, files) in sets {
        let destination_id = match dest {
            DestinationType::Screen => rules.screen,
            DestinationType::Dataset => rules.dataset,
        }
        .ok_or_else(|| {
            ResultsError::Invalid(format!(
                "the results hold {set} but there is no OMERO {} to import them into: give `results: {{\"type\": \"{}\", \"id\": N}}` in the submission",
                dest.as_str(),
                dest.as_str()
            ))
        })?;
        let key = format!("{submission}\n{}\n{set}", m.dir.display());
        orders.push(Order {
            uuid: Uuid::new_v5(&namespace(), key.as_bytes()).to_string(),
            set: set.to_owned(),
            group: rules.group.to_owned(),
            user: rules.user.to_owned(),
            destination_type: dest,
            destination_id,
            file_names: files
                .iter()
                .map(|f| f.rsplit('/').next().unwrap_or(f).to_owned())
                .collect(),
            files,
        });
    }
    Ok(orders)
}

async fn has_table(pool: &PgPool) -> Result<bool> {
    let row = sqlx::query("SELECT to_regclass('imports') IS NOT NULL AS present")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<bool, _>("present")?)
}

/// Writes `order` as a new `Import Pending` row unless a row with its uuid
/// exists; returns whether it was written.
pub async fn place(pool: &PgPool, order: &Order) -> Result<bool> {
    if !has_table(pool).await? {
        return Err(ResultsError::NoImportsTable);
    }
    let files = serde_json::to_string(&order.files)
        .map_err(|e| ResultsError::Invalid(format!("order files: {e}")))?;
    let names = serde_json::to_string(&order.file_names)
        .map_err(|e| ResultsError::Invalid(format!("order file names: {e}")))?;
    let mut tx = pool.begin().await?;
    // one writer per uuid at a time: a second daemon waits here, then sees the row
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&order.uuid)
        .execute(&mut *tx)
        .await?;
    let exists = sqlx::query("SELECT 1 FROM imports WHERE uuid = $1 LIMIT 1")
        .bind(&order.uuid)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if !exists {
        sqlx::query(
            "INSERT INTO imports (group_name, user_name, destination_id, destination_type, stage, uuid, timestamp, files, file_names) \
             VALUES ($1, $2, $3, $4, $5, $6, now(), $7, $8)",
        )
        .bind(&order.group)
        .bind(&order.user)
        .bind(order.destination_id.to_string())
        .bind(order.destination_type.as_str())
        .bind(STAGE_PENDING)
        .bind(&order.uuid)
        .bind(files)
        .bind(names)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(!exists)
}

/// The latest state of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// The latest stage.
    pub stage: String,
    /// The importer's description (its failure reason).
    pub description: Option<String>,
    /// When the order was placed (RFC 3339).
    pub placed_at: String,
    /// Seconds since it was placed (by the database's clock).
    pub age_secs: u64,
}

/// The latest row of order `uuid` (by timestamp, then id), if any.
pub async fn state(pool: &PgPool, uuid: &str) -> Result<Option<OrderState>> {
    let row = sqlx::query(
        "SELECT stage, description, \
                (SELECT min(timestamp) FROM imports WHERE uuid = $1) AS placed, \
                extract(epoch FROM now() - (SELECT min(timestamp) FROM imports WHERE uuid = $1))::bigint AS age \
         FROM imports WHERE uuid = $1 ORDER BY timestamp DESC, id DESC LIMIT 1",
    )
    .bind(uuid)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let placed: Option<chrono::DateTime<chrono::Utc>> = row.try_get("placed")?;
    Ok(Some(OrderState {
        stage: row.try_get("stage")?,
        description: row.try_get("description")?,
        placed_at: placed.map(|t| t.to_rfc3339()).unwrap_or_default(),
        age_secs: row
            .try_get::<Option<i64>, _>("age")?
            .and_then(|a| u64::try_from(a).ok())
            .unwrap_or(0),
    }))
}
