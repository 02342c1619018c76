//! The chart of finishes per minute: an SVG drawn on the server, so it needs no script and
//! no chart library, and reads as a table to a screen reader.

use batchframework_diesel::admin::Throughput;
use maud::{html, Markup};

use crate::format;

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 20.0;

/// Stacked bars per minute, succeeded below and failed above.
pub(crate) fn finishes(throughput: &Throughput) -> Markup {
    let minutes = &throughput.minutes;
    let most = minutes
        .iter()
        .map(|m| m.succeeded + m.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_width = WIDTH - LEFT;
    let plot_height = HEIGHT - BOTTOM;
    let slot = plot_width / minutes.len().max(1) as f64;
    let bar = (slot - 2.0).max(1.0);
    let y_of = |count: u64| plot_height - count as f64 / most as f64 * (plot_height - 8.0);
    let succeeded: u64 = minutes.iter().map(|m| m.succeeded).sum();
    let failed: u64 = minutes.iter().map(|m| m.failed).sum();
    let label = format!(
        "Finished per minute over the last hour: {succeeded} succeeded and {failed} failed in all, at most {most} in one minute"
    );
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
                line.axis x1=(LEFT) y1=(plot_height) x2=(WIDTH) y2=(plot_height) {}
                text.tick x=(LEFT - 6.0) y=(12) text-anchor="end" { (most) }
                text.tick x=(LEFT - 6.0) y=(plot_height) text-anchor="end" { "0" }
                @for (i, minute) in minutes.iter().enumerate() {
                    @let x = LEFT + i as f64 * slot + 1.0;
                    @let ok_top = y_of(minute.succeeded);
                    @let all_top = y_of(minute.succeeded + minute.failed);
                    g {
                        title {
                            (minute.start.format("%H:%M UTC")) ": "
                            (minute.succeeded) " succeeded, " (minute.failed) " failed"
                        }
                        @if minute.succeeded > 0 {
                            rect.succeeded x=(x) y=(ok_top) width=(bar) height=(plot_height - ok_top) {}
                        }
                        @if minute.failed > 0 {
                            rect.failed x=(x) y=(all_top) width=(bar) height=(ok_top - all_top) {}
                        }
                    }
                }
                @if let (Some(first), Some(last)) = (minutes.first(), minutes.last()) {
                    text.tick x=(LEFT) y=(HEIGHT - 4.0) { (first.start.format("%H:%M UTC")) }
                    text.tick x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" { (last.start.format("%H:%M UTC")) }
                }
            }
            figcaption {
                span.key.succeeded { "succeeded" } " " (succeeded) " · "
                span.key.failed { "failed" } " " (failed)
                @if let Some(since) = throughput.counted_since {
                    " · counts before " (format::time(since))
                    " are short: only the newest finishes of each queue were read"
                }
            }
        }
    }
}
