//! SVG charts of a `call` report (plotters, SVG backend only): the setup-time distribution
//! (cumulative share of calls established within x ms) and the time line of concurrent calls
//! with both server processes' CPU. Pure: report in, SVG text out; the caller writes files.

use plotters::prelude::*;

use crate::call_report::CallReport;

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("chart: {0}")]
pub struct ChartError(String);

fn err(e: impl std::fmt::Display) -> ChartError {
    ChartError(e.to_string())
}

const SIZE: (u32, u32) = (800, 450);

/// Cumulative distribution of setup times (`call` sent -> ESTABLISHED).
pub fn setup_svg(r: &CallReport) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let ms: Vec<f64> = r.setup_us.iter().map(|&u| u as f64 / 1000.0).collect();
        let xmax = ms.last().copied().unwrap_or(1.0).max(1.0) * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{}: setup time (call -> ESTABLISHED), {} calls, p50 {:.1} ms, p99 {:.1} ms",
                    r.name, r.setup.count, r.setup.p50_ms, r.setup.p99_ms
                ),
                ("sans-serif", 16),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..xmax, 0f64..100f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("setup time, ms")
            .y_desc("% of established calls")
            .draw()
            .map_err(err)?;
        let n = ms.len().max(1) as f64;
        let points = ms
            .iter()
            .enumerate()
            .map(|(i, &x)| (x, (i + 1) as f64 * 100.0 / n));
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Concurrent calls (left axis) and CPU of each server process (right axis) over the run.
pub fn load_svg(r: &CallReport) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let t = &r.timeline;
        let tmax = t.last().map(|s| s.t_secs).unwrap_or(1.0).max(1.0);
        let calls_max = t.iter().map(|s| s.active).max().unwrap_or(1).max(1) as f64 * 1.1;
        let cpu_max = t
            .iter()
            .map(|s| s.signalling_cpu.max(s.mediaplane_cpu) * 100.0)
            .fold(10.0f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: concurrent calls and server CPU", r.name),
                ("sans-serif", 16),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .right_y_label_area_size(50)
            .build_cartesian_2d(0f64..tmax, 0f64..calls_max)
            .map_err(err)?
            .set_secondary_coord(0f64..tmax, 0f64..cpu_max);
        chart
            .configure_mesh()
            .x_desc("seconds since the first call")
            .y_desc("calls up (ESTABLISHED, not hung up)")
            .draw()
            .map_err(err)?;
        chart
            .configure_secondary_axes()
            .y_desc("CPU, % of one core")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                t.iter().map(|s| (s.t_secs, s.active as f64)),
                BLACK.stroke_width(2),
            ))
            .map_err(err)?
            .label("calls up")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        chart
            .draw_secondary_series(LineSeries::new(
                t.iter().map(|s| (s.t_secs, s.mediaplane_cpu * 100.0)),
                RED.stroke_width(2),
            ))
            .map_err(err)?
            .label("wavegate-mediaplane CPU %")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .draw_secondary_series(LineSeries::new(
                t.iter().map(|s| (s.t_secs, s.signalling_cpu * 100.0)),
                BLUE.stroke_width(2),
            ))
            .map_err(err)?
            .label("wavegate (signalling + echo) CPU %")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call_report::Sample;

    #[test]
    fn charts_render_with_and_without_data() {
        let mut r = CallReport {
            name: "t".into(),
            ..CallReport::default()
        };
        // An empty run still gives valid SVG (a failed run is reported too).
        assert!(setup_svg(&r).unwrap().starts_with("<svg"));
        assert!(load_svg(&r).unwrap().contains("</svg>"));
        r.setup_us = vec![1000, 2000, 5000];
        r.timeline = (0..5)
            .map(|i: u32| Sample {
                t_secs: f64::from(i),
                active: u64::from(i) * 10,
                mediaplane_cpu: 0.2,
                signalling_cpu: 0.05,
                ..Sample::default()
            })
            .collect();
        let load = load_svg(&r).unwrap();
        assert!(load.contains("calls up"), "legend missing");
        assert!(load.contains("<polyline") || load.contains("<path"));
        assert!(setup_svg(&r).unwrap().contains("setup time"));
    }
}
