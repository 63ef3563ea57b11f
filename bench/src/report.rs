//! Printing latency distributions, and summarising repeated runs.

use hdrhistogram::Histogram;

/// A histogram of microseconds up to one minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// `p50 … max` in milliseconds on one line.
pub fn latency_line(label: &str, h: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "{label}: n={} p50={:.3}ms p90={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms",
        h.len(),
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    )
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The median and range of one figure over several runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let mid = sorted.len() / 2;
        let median =
            if sorted.len().is_multiple_of(2) { (sorted[mid - 1] + sorted[mid]) / 2.0 } else { sorted[mid] };
        Some(Self { median, min, max })
    }

    /// `median (min–max)` with each value formatted by `format`; only the median when the
    /// values are all the same, as after a single run.
    pub fn show(&self, format: impl Fn(f64) -> String) -> String {
        if self.min == self.max {
            return format(self.median);
        }
        format!("{} ({}–{})", format(self.median), format(self.min), format(self.max))
    }
}

/// One row of a [`side_by_side`] table: its label, the figure it shows (if it was measured)
/// and how that is written.
pub type Row<F> = (&'static str, fn(&F) -> Option<f64>, fn(f64) -> String);

/// Two sides of each run, figure by figure, as a Markdown table: each cell is the median over
/// the runs and, after several, the range; the last column is right ÷ left, computed within
/// each run and then summarised the same way.
pub fn side_by_side<F>(runs: &[(F, F)], [left, right]: [&str; 2], rows: &[Row<F>]) -> String {
    let mut out = format!("| | {left} | {right} | {right} ÷ {left} |\n| --- | --- | --- | --- |\n");
    let cell = |values: &[f64], format: &dyn Fn(f64) -> String| {
        Spread::of(values).map_or("not measured".to_owned(), |spread| spread.show(format))
    };
    for (label, pick, format) in rows {
        let lefts: Vec<f64> = runs.iter().filter_map(|(l, _)| pick(l)).collect();
        let rights: Vec<f64> = runs.iter().filter_map(|(_, r)| pick(r)).collect();
        let ratios: Vec<f64> =
            runs.iter().filter_map(|(l, r)| Some(pick(r)? / pick(l)?)).filter(|x| x.is_finite()).collect();
        out.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            cell(&lefts, format),
            cell(&rights, format),
            cell(&ratios, &ratio)
        ));
    }
    out
}

/// A rate per second to three significant digits, with thousands separators: `148,000`.
pub fn per_second(rate: f64) -> String {
    let rounded = round_significant(rate, 3).max(0.0) as u64;
    let digits = rounded.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Microseconds as `45 µs`, `3.1 µs`, `1.62 ms` or `1.03 s`, to two or three significant
/// digits.
pub fn micros(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1000.0 {
        let ms = us / 1000.0;
        let decimals = if ms >= 100.0 {
            0
        } else if ms >= 10.0 {
            1
        } else {
            2
        };
        format!("{ms:.decimals$} ms")
    } else {
        let decimals = if us >= 10.0 { 0 } else { 1 };
        format!("{us:.decimals$} µs")
    }
}

/// A ratio as `0.30×` or `11×`.
pub fn ratio(x: f64) -> String {
    let decimals = if x >= 10.0 {
        0
    } else if x >= 1.0 {
        1
    } else {
        2
    };
    format!("{x:.decimals$}×")
}

/// The machine's load averages over 1, 5 and 15 minutes, as `uptime` prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_has_the_middle_and_the_ends() {
        let odd = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(odd.show(|x| format!("{x}")), "2 (1–3)");
        assert_eq!(Spread::of(&[5.0]).unwrap().show(|x| format!("{x}")), "5");
    }

    #[test]
    fn figures_print_as_the_issue_writes_them() {
        assert_eq!(per_second(148_321.0), "148,000");
        assert_eq!(per_second(44_049.0), "44,000");
        assert_eq!(per_second(1_234_567.0), "1,230,000");
        assert_eq!(per_second(987.6), "988");
        assert_eq!(micros(45.2), "45 µs");
        assert_eq!(micros(3.12), "3.1 µs");
        assert_eq!(micros(1620.0), "1.62 ms");
        assert_eq!(micros(17_600.0), "17.6 ms");
        assert_eq!(micros(145_000.0), "145 ms");
        assert_eq!(micros(1_032_000.0), "1.03 s");
        assert_eq!(ratio(0.297), "0.30×");
        assert_eq!(ratio(7.1), "7.1×");
        assert_eq!(ratio(11.2), "11×");
    }
}
