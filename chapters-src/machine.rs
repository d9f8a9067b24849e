//! `machine`: which machine produced the outputs of this copy of the book.
//!
//! Every number in the book was printed by a program on the machine that built it, and that is
//! the reader's own machine as often as the published site's. The introduction runs this program
//! so that the rendered book says, in output rather than in typed prose, what it was built on.

use clap::Parser;

/// Prints the settings of this machine that change what the book's programs show: kernel,
/// architecture, CPUs, page size, transparent huge pages, whether physical frame numbers are
/// visible, valgrind, swap, address randomization, memory cgroups, the hugetlb pool, and the date.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Options {}

fn main() -> std::process::ExitCode {
    Options::parse();
    vmbook::run(|| {
        vmbook::banner();
        print!("{}", vmbook::environment::Environment::detect().describe());
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
        println!("machine.built: {}", utc_date(now.tv_sec()));
        Ok(())
    })
}

/// `2026-12-02 18:12 UTC` from seconds since the epoch (civil-from-days, proleptic Gregorian).
fn utc_date(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let minutes = seconds.rem_euclid(86_400) / 60;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        assert_eq!(super::utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc_date(1_796_234_400), "2026-12-02 18:00 UTC");
    }
}
