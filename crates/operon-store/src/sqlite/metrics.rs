//! Metrics on SQLite: `metric_series`, raw `metric_points`, the
//! `metric_rollups_1m` / `metric_rollups_1h` buckets upserted in the same
//! transaction as the raw points they summarise, and `metric_batches` (the
//! seqs recently stored per node).

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::batch_seqs::{SeqTable, remember_seq};
use super::{SqliteStore, from_json, to_json};
use crate::{
    MetricBatchWrite, MetricRollup, MetricSample, MetricSeries, MetricStore, PruneStep, Resolution,
    Result, db,
};

// SQL per table, spelled out: sqlx takes only literal SQL.
const SELECT_1M: &str = "SELECT bucket, count, sum, min, max FROM metric_rollups_1m
    WHERE series_id = ? AND bucket >= ? AND bucket < ? ORDER BY bucket";
const SELECT_1H: &str = "SELECT bucket, count, sum, min, max FROM metric_rollups_1h
    WHERE series_id = ? AND bucket >= ? AND bucket < ? ORDER BY bucket";

/// The statement deleting one series' rows of `resolution` older than a time.
fn prune_sql(resolution: Resolution) -> &'static str {
    match resolution {
        Resolution::Raw => "DELETE FROM metric_points WHERE series_id = ? AND at < ?",
        Resolution::Minute => "DELETE FROM metric_rollups_1m WHERE series_id = ? AND bucket < ?",
        Resolution::Hour => "DELETE FROM metric_rollups_1h WHERE series_id = ? AND bucket < ?",
    }
}

fn row_to_series(row: &sqlx::sqlite::SqliteRow) -> Result<MetricSeries> {
    let dimensions: String = row.get("dimensions");
    Ok(MetricSeries {
        id: row.get("id"),
        node_id: row.get("node_id"),
        name: row.get("name"),
        dimensions: from_json("reading metric dimensions", &dimensions)?,
        unit: row.get("unit"),
        last_at: row.get("last_at"),
        last_value: row.get("last_value"),
    })
}

/// The id of a series, created if new, with its latest value moved to the
/// newest of `samples` when that is newer.
async fn upsert_series(
    tx: &mut Transaction<'static, Sqlite>,
    node_id: &str,
    name: &str,
    dimensions: &str,
    samples: &[&MetricSample],
) -> Result<i64> {
    let Some(newest) = samples.iter().max_by_key(|s| s.at) else {
        return Err(crate::corrupt(
            "writing metrics",
            "a series without samples",
        ));
    };
    let unit = samples.iter().rev().find_map(|s| s.unit.clone());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO metric_series (node_id, name, dimensions, unit, last_at, last_value)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (node_id, name, dimensions) DO UPDATE SET
            unit = COALESCE(excluded.unit, unit),
            last_value = CASE WHEN excluded.last_at >= last_at THEN excluded.last_value ELSE last_value END,
            last_at = MAX(last_at, excluded.last_at)
         RETURNING id",
    )
    .bind(node_id)
    .bind(name)
    .bind(dimensions)
    .bind(unit)
    .bind(newest.at)
    .bind(newest.value)
    .fetch_one(&mut **tx)
    .await
    .map_err(db("writing a metric series"))?;
    Ok(id)
}

/// Rows per multi-row statement (3 or 6 variables each, far below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 500;

/// A raw point bound for a series: `(series_id, at, value)`.
type PointRow = (i64, i64, f64);

/// Insert raw points, many per statement; answers those that were new
/// (a point already stored for its series and instant is skipped).
async fn insert_points(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &[PointRow],
) -> Result<Vec<PointRow>> {
    let mut inserted = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO metric_points (series_id, at, value) ");
        insert.push_values(chunk, |mut row, (series, at, value)| {
            row.push_bind(*series).push_bind(*at).push_bind(*value);
        });
        insert.push(" ON CONFLICT (series_id, at) DO NOTHING RETURNING series_id, at, value");
        let new = insert
            .build()
            .fetch_all(&mut **tx)
            .await
            .map_err(db("writing metric points"))?;
        inserted.extend(new.iter().map(|r| (r.get(0), r.get(1), r.get(2))));
    }
    Ok(inserted)
}

/// Add new raw points to their 1-minute and 1-hour buckets: summed per
/// bucket first, then one upsert row per bucket.
async fn add_to_rollups(tx: &mut Transaction<'static, Sqlite>, points: &[PointRow]) -> Result<()> {
    for (resolution, table) in [
        (Resolution::Minute, "metric_rollups_1m"),
        (Resolution::Hour, "metric_rollups_1h"),
    ] {
        let mut buckets: BTreeMap<(i64, i64), MetricRollup> = BTreeMap::new();
        for &(series, at, value) in points {
            let bucket = at - at.rem_euclid(resolution.bucket_ms());
            buckets
                .entry((series, bucket))
                .and_modify(|r| {
                    r.count += 1;
                    r.sum += value;
                    r.min = r.min.min(value);
                    r.max = r.max.max(value);
                })
                .or_insert(MetricRollup {
                    bucket,
                    count: 1,
                    sum: value,
                    min: value,
                    max: value,
                });
        }
        let rows: Vec<((i64, i64), MetricRollup)> = buckets.into_iter().collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            // `table` is one of the two names above, never input.
            let mut upsert = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO {table} (series_id, bucket, count, sum, min, max) "
            ));
            upsert.push_values(chunk, |mut row, ((series, _), r)| {
                row.push_bind(*series)
                    .push_bind(r.bucket)
                    .push_bind(r.count as i64)
                    .push_bind(r.sum)
                    .push_bind(r.min)
                    .push_bind(r.max);
            });
            upsert.push(
                " ON CONFLICT (series_id, bucket) DO UPDATE SET
                    count = count + excluded.count, sum = sum + excluded.sum,
                    min = MIN(min, excluded.min), max = MAX(max, excluded.max)",
            );
            upsert
                .build()
                .execute(&mut **tx)
                .await
                .map_err(db("writing metric rollups"))?;
        }
    }
    Ok(())
}

/// Resolve one batch's series (created or their latest value moved) and
/// answer its points as rows, unless its seq is already stored for the node.
async fn batch_rows(
    tx: &mut Transaction<'static, Sqlite>,
    batch: &MetricBatchWrite,
) -> Result<Option<Vec<PointRow>>> {
    if !remember_seq(
        tx,
        SeqTable::Metrics,
        &batch.node_id,
        batch.seq,
        batch.received_at,
    )
    .await?
    {
        return Ok(None);
    }
    let mut by_series: BTreeMap<(&str, String), Vec<&MetricSample>> = BTreeMap::new();
    for sample in &batch.samples {
        by_series
            .entry((sample.name.as_str(), to_json(&sample.dimensions)))
            .or_default()
            .push(sample);
    }
    let mut rows = Vec::with_capacity(batch.samples.len());
    for ((name, dimensions), samples) in by_series {
        let series_id = upsert_series(tx, &batch.node_id, name, &dimensions, &samples).await?;
        rows.extend(samples.iter().map(|s| (series_id, s.at, s.value)));
    }
    Ok(Some(rows))
}

#[async_trait]
impl MetricStore for SqliteStore {
    async fn write_metric_batches(&self, batches: &[MetricBatchWrite]) -> Result<Vec<bool>> {
        let mut tx = self.begin_write("starting a metrics write").await?;
        let mut stored = Vec::with_capacity(batches.len());
        let mut rows = Vec::new();
        for batch in batches {
            let new = batch_rows(&mut tx, batch).await?;
            stored.push(new.is_some());
            rows.extend(new.into_iter().flatten());
        }
        // Points of every batch together: a few statements per commit.
        let inserted = insert_points(&mut tx, &rows).await?;
        add_to_rollups(&mut tx, &inserted).await?;
        tx.commit().await.map_err(db("committing metrics"))?;
        Ok(stored)
    }

    async fn metric_series(
        &self,
        name: Option<&str>,
        node_id: Option<&str>,
    ) -> Result<Vec<MetricSeries>> {
        let rows = sqlx::query(
            "SELECT id, node_id, name, dimensions, unit, last_at, last_value FROM metric_series
             WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR node_id = ?2)
             ORDER BY node_id, name, dimensions",
        )
        .bind(name)
        .bind(node_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading metric series"))?;
        rows.iter().map(row_to_series).collect()
    }

    async fn metric_points(&self, series_id: i64, from: i64, to: i64) -> Result<Vec<(i64, f64)>> {
        let rows = sqlx::query(
            "SELECT at, value FROM metric_points WHERE series_id = ? AND at >= ? AND at < ?
             ORDER BY at",
        )
        .bind(series_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading metric points"))?;
        Ok(rows.iter().map(|r| (r.get("at"), r.get("value"))).collect())
    }

    async fn metric_rollups(
        &self,
        series_id: i64,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<MetricRollup>> {
        let sql = match resolution {
            Resolution::Raw => return Ok(Vec::new()),
            Resolution::Minute => SELECT_1M,
            Resolution::Hour => SELECT_1H,
        };
        let rows = sqlx::query(sql)
            .bind(series_id)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading metric rollups"))?;
        Ok(rows
            .iter()
            .map(|r| MetricRollup {
                bucket: r.get("bucket"),
                count: r.get::<i64, _>("count").max(0) as u64,
                sum: r.get("sum"),
                min: r.get("min"),
                max: r.get("max"),
            })
            .collect())
    }

    async fn prune_metrics(
        &self,
        resolution: Resolution,
        before: i64,
        first_series: i64,
        series_count: u32,
    ) -> Result<PruneStep> {
        let mut tx = self.begin_write("starting a metrics prune").await?;
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM metric_series WHERE id >= ? ORDER BY id LIMIT ?")
                .bind(first_series)
                .bind(i64::from(series_count) + 1)
                .fetch_all(&mut *tx)
                .await
                .map_err(db("listing metric series to prune"))?;
        let next = (ids.len() > series_count as usize).then(|| ids[series_count as usize]);
        let mut deleted = 0;
        // One range delete per series, on the primary key: no index on time needed.
        for id in ids.iter().take(series_count as usize) {
            deleted += sqlx::query(prune_sql(resolution))
                .bind(id)
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(db("pruning metrics"))?
                .rows_affected();
        }
        tx.commit()
            .await
            .map_err(db("committing a metrics prune"))?;
        Ok(PruneStep { deleted, next })
    }

    async fn prune_metric_bookkeeping(&self, seqs_before: i64, series_before: i64) -> Result<u64> {
        let mut tx = self.begin_write("starting a metrics prune").await?;
        sqlx::query("DELETE FROM metric_batches WHERE received_at < ?")
            .bind(seqs_before)
            .execute(&mut *tx)
            .await
            .map_err(db("pruning metric batch seqs"))?;
        let gone: Vec<i64> =
            sqlx::query_scalar("DELETE FROM metric_series WHERE last_at < ? RETURNING id")
                .bind(series_before)
                .fetch_all(&mut *tx)
                .await
                .map_err(db("pruning metric series"))?;
        for id in &gone {
            for sql in [
                "DELETE FROM metric_points WHERE series_id = ?",
                "DELETE FROM metric_rollups_1m WHERE series_id = ?",
                "DELETE FROM metric_rollups_1h WHERE series_id = ?",
            ] {
                sqlx::query(sql)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("pruning a metric series"))?;
            }
        }
        tx.commit()
            .await
            .map_err(db("committing a metrics prune"))?;
        Ok(gone.len() as u64)
    }
}
