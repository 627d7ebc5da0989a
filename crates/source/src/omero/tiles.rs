//! Planes from omero-ms-pixel-buffer: each plane is fetched as tiles of
//! `tile_size`², `concurrency` requests in flight, each checked for its exact
//! length and converted from big-endian into the plane buffer as it arrives,
//! so memory stays at one plane plus the tiles in flight.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::OmeroClient;
use crate::error::{Result, SourceError};
use crate::plan::OmeroPixels;

/// Fetches plane (t, c, z) of `image` into `out` (native-endian samples, row-major YX).
pub async fn fetch_plane(
    client: &Arc<OmeroClient>,
    image: i64,
    px: &OmeroPixels,
    (t, c, z): (u64, u64, u64),
    out: &mut [u8],
) -> Result<()> {
    let es = px.dtype.size();
    let (sx, sy) = (px.sizes.x, px.sizes.y);
    let row_bytes = usize::try_from(sx).unwrap_or(usize::MAX) * es;
    if out.len() != row_bytes * usize::try_from(sy).unwrap_or(usize::MAX) {
        return Err(SourceError::NotConfigured(format!(
            "Image {image}: plane buffer of {} bytes for a {sx}×{sy} plane",
            out.len()
        )));
    }
    let ts = u64::from(client.config().tile_size.max(1));
    let sem = Arc::new(Semaphore::new(client.config().concurrency.max(1)));
    let mut set = JoinSet::new();
    for ty in (0..sy).step_by(usize::try_from(ts).unwrap_or(1024)) {
        for tx in (0..sx).step_by(usize::try_from(ts).unwrap_or(1024)) {
            let (w, h) = (ts.min(sx - tx), ts.min(sy - ty));
            let (client, sem) = (client.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let bytes = client.tile(image, (z, c, t), (tx, ty, w, h)).await?;
                Ok::<_, SourceError>((tx, ty, w, h, bytes))
            });
        }
    }
    while let Some(r) = set.join_next().await {
        let (tx, ty, w, h, bytes) = r.map_err(|e| SourceError::Unavailable {
            url: format!("Image {image} tile"),
            reason: e.to_string(),
        })??;
        let (wu, hu) = (
            usize::try_from(w).unwrap_or(0),
            usize::try_from(h).unwrap_or(0),
        );
        let want = wu * hu * es;
        if bytes.len() != want {
            return Err(SourceError::Protocol {
                url: format!("tile/{image}/{z}/{c}/{t}?x={tx}&y={ty}&w={w}&h={h}"),
                reason: format!(
                    "{} bytes, expected {want} ({w}×{h} samples of {es} bytes)",
                    bytes.len()
                ),
            });
        }
        let (txu, tyu) = (
            usize::try_from(tx).unwrap_or(0),
            usize::try_from(ty).unwrap_or(0),
        );
        for (r, src) in bytes.chunks_exact(wu * es).enumerate() {
            let o = (tyu + r) * row_bytes + txu * es;
            let dst = &mut out[o..o + wu * es];
            dst.copy_from_slice(src);
            if es > 1 && cfg!(target_endian = "little") {
                dst.chunks_exact_mut(es).for_each(<[u8]>::reverse);
            }
        }
    }
    Ok(())
}
