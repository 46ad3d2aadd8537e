//! Time for the controller, behind a trait so tests run a whole rollout in simulated seconds: the
//! controller never reads the system clock or sleeps except through [`Clock`].

/// Seconds and sleeping.
pub trait Clock {
    /// Unix seconds (the stepper's and the state file's timeline; it must survive a restart).
    fn now(&self) -> f64;
    fn sleep(&mut self, secs: f64);
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
    }

    fn sleep(&mut self, secs: f64) {
        if secs.is_finite() && secs > 0.0 {
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
        }
    }
}

/// Simulated time: sleeping only advances the number (tests).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ManualClock {
    pub now: f64,
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        self.now
    }

    fn sleep(&mut self, secs: f64) {
        if secs.is_finite() && secs > 0.0 {
            self.now += secs;
        }
    }
}
