//! The fused data pass shared by the GLM objectives: one read of the shards per evaluation,
//! rows in cache-sized blocks, fixed-size chunks spread over all cores whatever the shard
//! layout, partial sums combined in chunk order so the result does not depend on threads.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::shard::{Hot, Part, Shard, add_levels};

/// Rows per block: the block's margins and the feature slices it touches stay in L2 while
/// they are read twice (margin, then gradient).
const BLOCK: usize = 2048;
/// Rows per unit of parallel work: small enough to balance two uneven shards over cores.
const CHUNK: usize = 1 << 16;

/// Sums over rows of one objective evaluation.
#[derive(Debug, Clone, Default)]
pub struct Partial {
    /// Σ loss_i.
    pub loss: f64,
    /// Σ_i r_i x_ij for each feature j.
    pub raw: Vec<f64>,
    /// Σ r_i.
    pub residual_sum: f64,
}

/// Evaluate margins m_i = offset + Σ_j a_j x_ij and, through `per_block(margins, labels,
/// weights) → (Σ loss, Σ residual)`, which turns a block's margins into its residuals, the loss
/// and the residual-weighted feature sums over every row.
pub fn fused_pass<F>(shards: &[Shard], a: &[f64], offset: f64, per_block: F) -> Partial
where
    F: BlockLoss + Sync,
{
    let features = a.len();
    let parts = parallel_chunks(shards, |shard, rows| {
        chunk_pass(shard, rows, a, offset, &per_block)
    });
    let mut total = Partial {
        raw: vec![0.0; features],
        ..Default::default()
    };
    for p in parts {
        total.loss += p.loss;
        total.residual_sum += p.residual_sum;
        for (t, r) in total.raw.iter_mut().zip(&p.raw) {
            *t += r;
        }
    }
    total
}

/// A loss over a block: `(margins, labels, weights) → (Σ loss, Σ residual)`, the margins
/// replaced by the residuals.
pub trait BlockLoss: Fn(&mut [f64], &[f64], Option<&[f64]>) -> (f64, f64) {}

impl<F: Fn(&mut [f64], &[f64], Option<&[f64]>) -> (f64, f64)> BlockLoss for F {}

/// A per-row `(margin, label, weight) → (loss, residual)` as the block function `fused_pass`
/// takes.
pub fn by_row(per_row: impl Fn(f64, f64, f64) -> (f64, f64)) -> impl BlockLoss {
    move |margins, labels, weights| {
        let (mut loss, mut residual_sum) = (0.0, 0.0);
        for (i, m) in margins.iter_mut().enumerate() {
            let w = weights.map_or(1.0, |w| w[i]);
            let (l, r) = per_row(*m, labels[i], w);
            loss += l;
            residual_sum += r;
            *m = r;
        }
        (loss, residual_sum)
    }
}

fn chunk_pass<F>(
    shard: &Shard,
    rows: Range<usize>,
    a: &[f64],
    offset: f64,
    per_block: &F,
) -> Partial
where
    F: BlockLoss,
{
    let mut out = Partial {
        raw: vec![0.0; shard.columns.len()],
        ..Default::default()
    };
    let parts = shard.parts();
    let tables: Vec<Vec<f64>> = shard.hot.iter().map(|h| h.table(a)).collect();
    let dense: Vec<(usize, &[f64])> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Dense(j, col) => Some((*j, *col)),
            Part::Hot(..) => None,
        })
        .collect();
    let mut sums = HotSums::default();
    let mut buffer = [0.0f64; BLOCK];
    for start in rows.clone().step_by(BLOCK) {
        let end = (start + BLOCK).min(rows.end);
        let margin = &mut buffer[..end - start];
        margin.fill(offset);
        add_margins(margin, &parts, a, &tables, start..end);
        let labels = &shard.label[start..end];
        let weights = (!shard.weight.is_empty()).then(|| &shard.weight[start..end]);
        // The margin buffer becomes the residual buffer.
        let (loss, residual_sum) = per_block(margin, labels, weights);
        out.loss += loss;
        out.residual_sum += residual_sum;
        let mut groups = dense.chunks_exact(FUSED);
        for q in groups.by_ref() {
            let column = |c: usize| &q[c].1[start..end];
            let d = dot4(margin, [column(0), column(1), column(2), column(3)]);
            for ((j, _), d) in q.iter().zip(d) {
                out.raw[*j] += d;
            }
        }
        for (j, col) in groups.remainder() {
            out.raw[*j] += dot(margin, &col[start..end]);
        }
        for part in &parts {
            if let Part::Hot(_, h) = part {
                sums.add(h, margin, &h.level[start..end], &mut out.raw);
            }
        }
    }
    out
}

/// Dense columns summed in one loop over a block's rows: the margin is read and written, and
/// in the gradient read, once per this many columns. 4 and 8 measured level; 1 (a column at
/// a time) was 1.1× slower.
const FUSED: usize = 4;

/// Adds a·x of every feature of rows `rows` to their margins, in feature order. Dense
/// columns are added `FUSED` at a time, each row's margin read and written once per group
/// rather than once per column: m + a₀x₀ + a₁x₁ + … in the same order, so the same bits.
/// Zero coefficients add nothing and are skipped, as a column at a time skipped them.
fn add_margins(
    margin: &mut [f64],
    parts: &[Part],
    a: &[f64],
    tables: &[Vec<f64>],
    rows: Range<usize>,
) {
    let mut columns: Vec<(f64, &[f64])> = Vec::with_capacity(FUSED);
    for part in parts {
        match part {
            Part::Dense(j, col) => {
                if a[*j] != 0.0 {
                    columns.push((a[*j], &col[rows.clone()]));
                }
                if columns.len() == FUSED {
                    add_columns(margin, &columns);
                    columns.clear();
                }
            }
            Part::Hot(g, h) => {
                add_columns(margin, &columns);
                columns.clear();
                add_levels(margin, &h.level[rows.clone()], &tables[*g]);
            }
        }
    }
    add_columns(margin, &columns);
}

/// `margin[i] += a·x[i]` for each (a, x) of `columns` in turn, in one loop over the rows.
fn add_columns(margin: &mut [f64], columns: &[(f64, &[f64])]) {
    fn fused<const W: usize>(margin: &mut [f64], columns: &[(f64, &[f64])]) {
        let n = margin.len();
        // Slices of exactly the margin's length: the indexing below needs no bounds checks.
        let columns: [(f64, &[f64]); W] =
            std::array::from_fn(|c| (columns[c].0, &columns[c].1[..n]));
        for (i, m) in margin.iter_mut().enumerate() {
            let mut sum = *m;
            for (a, x) in &columns {
                sum += a * x[i];
            }
            *m = sum;
        }
    }
    match columns.len() {
        0 => {}
        1 => fused::<1>(margin, columns),
        2 => fused::<2>(margin, columns),
        3 => fused::<3>(margin, columns),
        _ => fused::<FUSED>(margin, columns),
    }
}

/// Per level of a one-hot group, the residuals of the rows at that level: what `dot` gives
/// against the level's 0/1 column, to the bit (four lanes and a tail, summed per block the
/// same way). Past `LANE_LEVELS` levels, clearing the lanes per block would cost more than
/// the rows, so each residual goes straight into its feature's sum.
#[derive(Default)]
struct HotSums {
    lanes: Vec<[f64; 4]>,
    tail: Vec<f64>,
}

const LANE_LEVELS: usize = 512;

impl HotSums {
    fn add(&mut self, h: &Hot, residuals: &[f64], levels: &[u32], raw: &mut [f64]) {
        let raw = &mut raw[h.first..h.first + h.levels];
        if h.levels > LANE_LEVELS {
            for (&r, &l) in residuals.iter().zip(levels) {
                if let Some(v) = raw.get_mut(l as usize) {
                    *v += r;
                }
            }
            return;
        }
        // A power-of-two length masks the index in bounds, as in `add_levels`.
        let size = (h.levels + 1).next_power_of_two();
        let mask = size - 1;
        self.lanes.clear();
        self.lanes.resize(size, [0.0; 4]);
        self.tail.clear();
        self.tail.resize(size, 0.0);
        let (lanes, tail) = (&mut self.lanes[..=mask], &mut self.tail[..=mask]);
        let (r4, l4) = (residuals.chunks_exact(4), levels.chunks_exact(4));
        for (r, l) in r4.remainder().iter().zip(l4.remainder()) {
            tail[*l as usize & mask] += r;
        }
        for (r, l) in r4.zip(l4) {
            for k in 0..4 {
                lanes[l[k] as usize & mask][k] += r[k];
            }
        }
        for ((v, lane), tail) in raw.iter_mut().zip(&self.lanes).zip(&self.tail) {
            *v += lane[0] + lane[1] + lane[2] + lane[3] + tail;
        }
    }
}

/// Run `f` over every shard's rows in CHUNK-sized ranges on all cores; results in chunk order.
pub fn parallel_chunks<T, F>(shards: &[Shard], f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&Shard, Range<usize>) -> T + Sync,
{
    let tasks: Vec<(&Shard, Range<usize>)> = shards
        .iter()
        .flat_map(|s| {
            (0..s.rows())
                .step_by(CHUNK)
                .map(move |start| (s, start..(start + CHUNK).min(s.rows())))
        })
        .collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(tasks.len());
    if threads <= 1 {
        return tasks.into_iter().map(|(s, r)| f(s, r)).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = vec![];
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((s, r)) = tasks.get(i) else { break };
                        mine.push((i, f(s, r.clone())));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

/// Dot product with four independent accumulators, so the adds pipeline and vectorise.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f64; 4];
    for (x, y) in a4.zip(b4) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    acc[0] + acc[1] + acc[2] + acc[3] + tail
}

/// `dot` of `a` with four columns in one loop (a read once): each column's sums in four
/// lanes and a tail exactly as `dot` keeps them, so each result has `dot`'s bits.
fn dot4(a: &[f64], b: [&[f64]; 4]) -> [f64; 4] {
    let n = b.iter().fold(a.len(), |n, c| n.min(c.len()));
    let body = n / 4 * 4;
    let mut acc = [[0.0f64; 4]; 4];
    fn lanes(c: &[f64], body: usize) -> std::slice::ChunksExact<'_, f64> {
        c[..body].chunks_exact(4)
    }
    for ((((x, y0), y1), y2), y3) in lanes(a, body)
        .zip(lanes(b[0], body))
        .zip(lanes(b[1], body))
        .zip(lanes(b[2], body))
        .zip(lanes(b[3], body))
    {
        for k in 0..4 {
            acc[0][k] += x[k] * y0[k];
            acc[1][k] += x[k] * y1[k];
            acc[2][k] += x[k] * y2[k];
            acc[3][k] += x[k] * y3[k];
        }
    }
    std::array::from_fn(|c| {
        let tail: f64 = a[body..n]
            .iter()
            .zip(&b[c][body..n])
            .map(|(x, y)| x * y)
            .sum();
        acc[c][0] + acc[c][1] + acc[c][2] + acc[c][3] + tail
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(rows: usize, seed: u64) -> Shard {
        let value = |i: usize, j: usize| ((i * 31 + j * 17 + seed as usize) % 97) as f64 / 13.0;
        Shard {
            columns: (0..3)
                .map(|j| (0..rows).map(|i| value(i, j)).collect())
                .collect(),
            label: (0..rows).map(|i| (i % 3 == 0) as u8 as f64).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn fused_pass_matches_a_plain_loop_over_uneven_shards() {
        let shards = vec![shard(200_001, 1), shard(3, 2), shard(70_000, 3)];
        let a = [0.3, -0.2, 0.1];
        let per_row = |m: f64, y: f64, w: f64| (w * (m - y) * (m - y), w * (m - y));
        let got = fused_pass(&shards, &a, 0.5, by_row(per_row));
        let mut want = Partial {
            raw: vec![0.0; 3],
            ..Default::default()
        };
        for s in &shards {
            for i in 0..s.rows() {
                let m = 0.5 + (0..3).map(|j| a[j] * s.columns[j][i]).sum::<f64>();
                let (l, r) = per_row(m, s.label[i], 1.0);
                want.loss += l;
                want.residual_sum += r;
                for j in 0..3 {
                    want.raw[j] += r * s.columns[j][i];
                }
            }
        }
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1.0);
        assert!(close(got.loss, want.loss), "{} vs {}", got.loss, want.loss);
        assert!(close(got.residual_sum, want.residual_sum));
        for j in 0..3 {
            assert!(close(got.raw[j], want.raw[j]));
        }
    }

    /// One-hot groups held as levels give the dense layout's sums to the bit, weighted or not,
    /// over uneven shards whose last blocks have tails.
    #[test]
    fn levels_sum_as_their_dense_columns_do() {
        use crate::ml::shard::tests::mixed;
        for weighted in [false, true] {
            let hot = vec![mixed(200_003, 1, weighted), mixed(5, 2, weighted)];
            let dense: Vec<Shard> = hot.iter().map(Shard::dense).collect();
            let a = [0.3, -0.2, 0.0, 0.7, 0.1];
            let per_row = |m: f64, y: f64, w: f64| (w * (m - y) * (m - y), w * (m - y));
            let got = fused_pass(&hot, &a, 0.5, by_row(per_row));
            let want = fused_pass(&dense, &a, 0.5, by_row(per_row));
            assert_eq!(got.loss.to_bits(), want.loss.to_bits());
            assert_eq!(got.residual_sum.to_bits(), want.residual_sum.to_bits());
            assert_eq!(got.raw, want.raw);
        }
    }

    /// Past the lanes' level count each residual goes straight to its level: equal to rounding.
    #[test]
    fn many_levels_sum_to_their_dense_columns_to_rounding() {
        use crate::ml::shard::tests::wide;
        let hot = vec![wide(30_001, 600)];
        let dense: Vec<Shard> = hot.iter().map(Shard::dense).collect();
        let a: Vec<f64> = (0..601)
            .map(|j| ((j * 37) % 11) as f64 / 10.0 - 0.5)
            .collect();
        let per_row = |m: f64, y: f64, w: f64| (w * (m - y) * (m - y), w * (m - y));
        let got = fused_pass(&hot, &a, 0.1, by_row(per_row));
        let want = fused_pass(&dense, &a, 0.1, by_row(per_row));
        assert_eq!(got.loss, want.loss);
        for (g, w) in got.raw.iter().zip(&want.raw) {
            assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    /// Dense columns summed four at a time, around a one-hot group and a zero coefficient,
    /// give the margins a column at a time gave, to the bit; `dot4` gives `dot`'s bits.
    #[test]
    fn fused_columns_keep_the_bits_of_one_column_at_a_time() {
        let rows = 1003;
        let value = |i: usize, j: usize| ((i * 37 + j * 101) % 211) as f64 / 7.3 - 13.1;
        // Features 0..3 dense, 3..6 one-hot, 6..13 dense: runs of 3, then 4 and 3.
        let columns: Vec<Vec<f64>> = (0..13)
            .map(|j| match j {
                3..6 => vec![],
                _ => (0..rows).map(|i| value(i, j)).collect(),
            })
            .collect();
        let hot = Hot {
            first: 3,
            levels: 3,
            level: (0..rows).map(|i| (i % 4) as u32).collect(),
        };
        let shard = Shard {
            columns,
            hot: vec![hot],
            label: vec![0.0; rows],
            ..Default::default()
        };
        let a: Vec<f64> = (0..13)
            .map(|j| if j == 8 { 0.0 } else { 0.37 * j as f64 - 1.9 })
            .collect();
        let parts = shard.parts();
        let tables = vec![shard.hot[0].table(&a)];
        for range in [0..rows, 5..rows - 2, 0..3] {
            let mut got = vec![0.25; range.len()];
            add_margins(&mut got, &parts, &a, &tables, range.clone());
            let mut want = vec![0.25; range.len()];
            for part in &parts {
                match part {
                    Part::Dense(j, col) if a[*j] != 0.0 => {
                        for (m, x) in want.iter_mut().zip(&col[range.clone()]) {
                            *m += a[*j] * x;
                        }
                    }
                    Part::Dense(..) => {}
                    Part::Hot(g, h) => add_levels(&mut want, &h.level[range.clone()], &tables[*g]),
                }
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "rows {range:?}");
        }
        for n in 0..11 {
            let c = |j: usize| (0..n).map(|i| value(i, j)).collect::<Vec<f64>>();
            let (x, b) = (c(0), [c(1), c(2), c(3), c(4)]);
            let got = dot4(&x, [&b[0], &b[1], &b[2], &b[3]]);
            for (g, b) in got.iter().zip(&b) {
                assert_eq!(g.to_bits(), dot(&x, b).to_bits(), "{n} rows");
            }
        }
    }

    #[test]
    fn dot_handles_every_tail_length() {
        for n in 0..11 {
            let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let b: Vec<f64> = (0..n).map(|i| 2.0 * i as f64 + 1.0).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), want);
        }
    }
}
