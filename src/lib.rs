//! `resilience._core`: the Python binding of the breaker and window core.
//!
//! The algorithms live in [`breaker`] and [`window`] and know nothing of Python; this file only
//! converts arguments, reads the clock, runs the protected callable, and delivers events and
//! metrics to Python objects, never while holding a lock of the core.

pub mod breaker;
pub mod clock;
mod sync;
pub mod window;

#[cfg(feature = "python")]
mod binding {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::pyclass::{PyTraverseError, PyVisit};
    use pyo3::types::{PyDict, PyString, PyTuple};

    use crate::breaker::{self, Config, Outcome, Rejected, State};
    use crate::clock::{self, Clock, MonotonicClock, Tick};
    use crate::window;

    const NS_PER_SEC: f64 = 1e9;

    /// Seconds (float, int or timedelta) to nanoseconds, naming `field` in any error.
    fn seconds_to_ns(field: &str, value: &Bound<'_, PyAny>, allow_negative: bool) -> PyResult<i64> {
        let secs = if value.is_instance(&timedelta_type(value.py())?)? {
            value.call_method0("total_seconds")?.extract::<f64>()?
        } else if value.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyTypeError::new_err(format!(
                "{field} must be seconds (float) or a timedelta, got {value} (bool)"
            )));
        } else if let Ok(v) = value.extract::<f64>() {
            v
        } else {
            return Err(PyTypeError::new_err(format!(
                "{field} must be seconds (float) or a timedelta, got {} ({})",
                value.repr()?,
                value.get_type().name()?
            )));
        };
        if !secs.is_finite() {
            return Err(PyValueError::new_err(format!(
                "{field} must be finite, got {secs}"
            )));
        }
        if secs < 0.0 && !allow_negative {
            return Err(PyValueError::new_err(format!(
                "{field} must be >= 0, got {secs}"
            )));
        }
        let ns = (secs * NS_PER_SEC).round();
        if ns.abs() >= 9.0e18 {
            return Err(PyValueError::new_err(format!(
                "{field} is too large: {secs} seconds"
            )));
        }
        Ok(ns as i64)
    }

    /// `datetime.timedelta` (the stable ABI has no direct access to it).
    fn timedelta_type(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        py.import("datetime")?.getattr("timedelta")
    }

    fn ns_to_seconds(ns: i64) -> f64 {
        ns as f64 / NS_PER_SEC
    }

    /// A clock that only moves when told to. Share one between breakers, windows and retries in a
    /// test and advance it instead of sleeping.
    #[pyclass(frozen, module = "resilience.testing", name = "ManualClock")]
    pub struct PyManualClock {
        inner: Arc<clock::ManualClock>,
    }

    #[pymethods]
    impl PyManualClock {
        #[new]
        #[pyo3(signature = (start = None))]
        fn new(start: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
            let start_ns = match start {
                Some(value) => seconds_to_ns("ManualClock.start", value, true)?,
                None => 0,
            };
            Ok(PyManualClock {
                inner: Arc::new(clock::ManualClock::new(start_ns)),
            })
        }

        /// The current reading in seconds.
        fn now(&self) -> f64 {
            ns_to_seconds(self.inner.ns())
        }

        /// Moves the clock by `seconds` (float or timedelta); negative moves it backwards.
        fn advance(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
            let delta = seconds_to_ns("ManualClock.advance(seconds)", seconds, true)?;
            self.inner.advance(delta);
            Ok(())
        }

        /// A drop-in for `time.sleep` that advances the clock instead of sleeping.
        fn sleep(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
            let delta = seconds_to_ns("ManualClock.sleep(seconds)", seconds, false)?;
            self.inner.advance(delta);
            Ok(())
        }

        fn __repr__(&self) -> String {
            format!("ManualClock(now={})", ns_to_seconds(self.inner.ns()))
        }
    }

    /// Where a breaker or window reads the time.
    enum TimeSource {
        Monotonic,
        Manual(Arc<clock::ManualClock>),
    }

    impl TimeSource {
        fn from_py(owner: &str, clock: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
            match clock {
                None => Ok(TimeSource::Monotonic),
                Some(obj) if obj.is_none() => Ok(TimeSource::Monotonic),
                Some(obj) => match obj.cast::<PyManualClock>() {
                    Ok(manual) => Ok(TimeSource::Manual(manual.get().inner.clone())),
                    Err(_) => Err(PyTypeError::new_err(format!(
                        "{owner}.clock must be None or a resilience.testing.ManualClock, got {} ({})",
                        obj.repr()?,
                        obj.get_type().name()?
                    ))),
                },
            }
        }

        #[inline]
        fn now(&self) -> Tick {
            match self {
                TimeSource::Monotonic => MonotonicClock.now(),
                TimeSource::Manual(clock) => clock.now(),
            }
        }
    }

    /// The right to run one call; give it back with `Breaker.complete` once.
    #[pyclass(frozen, module = "resilience._core")]
    pub struct Permit {
        inner: breaker::Permit,
        done: AtomicBool,
    }

    #[pymethods]
    impl Permit {
        /// The generation the call was admitted in.
        #[getter]
        fn generation(&self) -> u64 {
            self.inner.generation()
        }

        /// True for a HALF_OPEN trial call.
        #[getter]
        fn is_trial(&self) -> bool {
            self.inner.is_trial()
        }
    }

    /// The breaker core with its Python-facing parts: name, classifier, event and metrics sinks.
    #[pyclass(frozen, module = "resilience._core")]
    pub struct Breaker {
        core: breaker::Breaker,
        time: TimeSource,
        name: Py<PyString>,
        classifier: Py<PyAny>,
        /// `.transition(from, to, error_rate)` and `.callback_failed(what, exc)`.
        notifier: Py<PyAny>,
        on_success: Option<Py<PyAny>>,
        on_failure: Option<Py<PyAny>>,
        on_rejection: Option<Py<PyAny>>,
        open_error: Py<PyAny>,
        states: [Py<PyAny>; 3],
    }

    fn outcome_code(code: u8) -> PyResult<Outcome> {
        match code {
            0 => Ok(Outcome::Success),
            1 => Ok(Outcome::Failure),
            2 => Ok(Outcome::Ignored),
            _ => Err(PyValueError::new_err(format!(
                "outcome must be 0 (success), 1 (failure) or 2 (ignored), got {code}"
            ))),
        }
    }

    impl Breaker {
        #[inline]
        fn now(&self) -> Tick {
            self.time.now()
        }

        fn state_obj(&self, py: Python<'_>, state: State) -> Py<PyAny> {
            self.states[state as usize].clone_ref(py)
        }

        /// Builds the CircuitBreakerOpenError for a rejection and reports it to the collector.
        fn rejection(&self, py: Python<'_>, rejected: Rejected) -> PyErr {
            if let Some(sink) = &self.on_rejection {
                if let Err(err) = sink.call1(py, (self.name.clone_ref(py),)) {
                    self.callback_failed(py, "metrics", err);
                }
            }
            self.deliver(py);
            let retry_after = rejected.retry_after_ns.map(ns_to_seconds);
            match self.open_error.call1(
                py,
                (
                    self.name.clone_ref(py),
                    self.state_obj(py, rejected.state),
                    retry_after,
                ),
            ) {
                Ok(exc) => PyErr::from_value(exc.into_bound(py)),
                Err(err) => err,
            }
        }

        /// How the breaker counts a raised exception (contract rules 2 and 7).
        fn classify(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> Outcome {
            if !exc.is_instance_of::<PyException>() {
                return Outcome::Ignored; // KeyboardInterrupt, SystemExit, CancelledError, ...
            }
            match self
                .classifier
                .call1(py, (exc,))
                .and_then(|verdict| verdict.is_truthy(py))
            {
                Ok(true) => Outcome::Failure,
                Ok(false) => Outcome::Ignored,
                Err(err) => {
                    self.callback_failed(py, "classifier", err);
                    Outcome::Failure
                }
            }
        }

        /// Counts an outcome and tells the collector; delivers any transition it caused.
        fn finish(
            &self,
            py: Python<'_>,
            permit: breaker::Permit,
            outcome: Outcome,
            exc: Option<&Bound<'_, PyAny>>,
        ) {
            let counted = self.core.complete(permit, outcome, || self.now());
            if counted {
                self.report(py, outcome, exc);
            }
            if self.core.has_events() {
                self.deliver(py);
            }
        }

        fn report(&self, py: Python<'_>, outcome: Outcome, exc: Option<&Bound<'_, PyAny>>) {
            let result = match outcome {
                Outcome::Success => match &self.on_success {
                    Some(sink) => sink.call1(py, (self.name.clone_ref(py),)),
                    None => return,
                },
                Outcome::Failure => match &self.on_failure {
                    Some(sink) => {
                        let error_type = match exc {
                            Some(exc) => exc.get_type().qualname().map(|q| q.unbind()),
                            None => Ok(PyString::new(py, "unknown").unbind()),
                        };
                        error_type.and_then(|t| sink.call1(py, (self.name.clone_ref(py), t)))
                    }
                    None => return,
                },
                Outcome::Ignored => return,
            };
            if let Err(err) = result {
                self.callback_failed(py, "metrics", err);
            }
        }

        fn callback_failed(&self, py: Python<'_>, what: &str, err: PyErr) {
            let exc = err.value(py).clone();
            if let Err(secondary) = self
                .notifier
                .call_method1(py, "callback_failed", (what, exc))
            {
                secondary.write_unraisable(py, None);
            }
        }

        /// Delivers queued transitions, oldest first, from one thread at a time, with no lock held.
        fn deliver(&self, py: Python<'_>) {
            while self.core.has_events() {
                if !self.core.begin_delivery() {
                    return; // another thread is delivering and will see our events
                }
                while let Some(event) = self.core.next_event() {
                    let args = (
                        self.state_obj(py, event.from),
                        self.state_obj(py, event.to),
                        event.error_rate,
                    );
                    if let Err(err) = self.notifier.call_method1(py, "transition", args) {
                        err.write_unraisable(py, None);
                    }
                }
                if !self.core.end_delivery() {
                    return;
                }
            }
        }
    }

    impl Breaker {
        /// Admits a call, runs `invoke`, records the outcome: the whole of `call`.
        fn guarded<'py>(
            &self,
            py: Python<'py>,
            invoke: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let permit = match self.core.try_acquire(|| self.now()) {
                Ok(permit) => permit,
                Err(rejected) => return Err(self.rejection(py, rejected)),
            };
            if self.core.has_events() {
                self.deliver(py);
            }
            match invoke() {
                Ok(value) => {
                    self.finish(py, permit, Outcome::Success, None);
                    Ok(value)
                }
                Err(err) => {
                    let exc = err.value(py).clone();
                    let outcome = self.classify(py, exc.as_any());
                    self.finish(py, permit, outcome, Some(exc.as_any()));
                    Err(err)
                }
            }
        }
    }

    /// The method definition behind `Breaker.fast_call`.
    struct MethodDef(ffi::PyMethodDef);
    // SAFETY: the definition is immutable after construction; CPython only reads it.
    unsafe impl Sync for MethodDef {}

    static FAST_CALL: MethodDef = MethodDef(ffi::PyMethodDef {
        ml_name: c"call".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: fast_call,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc:
            c"call(func, /, *args, **kwargs)\n--\n\nRuns func(*args, **kwargs) through the breaker."
                .as_ptr(),
    });

    /// METH_FASTCALL entry point of `call`: `args[0]` is the function, the rest (and the values
    /// named by `kwnames`) are forwarded to it.
    unsafe extern "C" fn fast_call(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython calls us with an attached thread state.
        let py = unsafe { Python::assume_attached() };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: arguments as CPython passes them to a METH_FASTCALL | METH_KEYWORDS
            // builtin whose `self` is a Breaker (set in `Breaker.fast_call`).
            unsafe { fast_call_impl(py, slf, args, nargs, kwnames) }
        }));
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err(pyo3::panic::PanicException::new_err(
                "a panic in the resilience core (this is a bug; please report it)",
            )),
        };
        match result {
            Ok(value) => value.into_ptr(),
            Err(err) => {
                err.restore(py);
                std::ptr::null_mut()
            }
        }
    }

    unsafe fn fast_call_impl<'py>(
        py: Python<'py>,
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY (whole function): see `fast_call`; `args` holds `nargs` positional values
        // followed by one value per name in the `kwnames` tuple.
        // Borrowed, not Bound: no reference-count traffic on the breaker or the function, which
        // every thread shares (on free-threaded builds that traffic is contended).
        let slf = unsafe { Borrowed::<'_, 'py, PyAny>::from_ptr(py, slf) };
        let breaker = unsafe { slf.cast_unchecked::<Breaker>() };
        let breaker = breaker.get();
        if nargs < 1 {
            return Err(PyTypeError::new_err(
                "call() missing the function to call (call(func, /, *args, **kwargs))",
            ));
        }
        let arg = |i: ffi::Py_ssize_t| unsafe { Borrowed::from_ptr(py, *args.offset(i)) };
        let func = arg(0);
        breaker.guarded(py, || {
            if nargs == 1 && kwnames.is_null() {
                return func.call0();
            }
            let positional = PyTuple::new(py, (1..nargs).map(arg))?;
            let keywords = if kwnames.is_null() {
                None
            } else {
                let names = unsafe { Bound::<PyAny>::from_borrowed_ptr(py, kwnames) };
                let names = names.cast_into::<PyTuple>()?;
                let dict = PyDict::new(py);
                for (j, name) in names.iter().enumerate() {
                    dict.set_item(name, arg(nargs + j as ffi::Py_ssize_t))?;
                }
                Some(dict)
            };
            func.call(positional, keywords.as_ref())
        })
    }

    #[pymethods]
    impl Breaker {
        #[new]
        #[pyo3(signature = (
            *, name, error_threshold, volume_threshold, sleep_window, half_open_requests,
            success_threshold, window_size, bucket_count, failure_threshold,
            sleep_window_multiplier, max_sleep_window, clock, classifier, notifier, metrics,
            open_error, states
        ))]
        #[allow(clippy::too_many_arguments)]
        fn new(
            py: Python<'_>,
            name: Bound<'_, PyString>,
            error_threshold: f64,
            volume_threshold: u64,
            sleep_window: &Bound<'_, PyAny>,
            half_open_requests: u32,
            success_threshold: f64,
            window_size: &Bound<'_, PyAny>,
            bucket_count: u32,
            failure_threshold: u64,
            sleep_window_multiplier: f64,
            max_sleep_window: &Bound<'_, PyAny>,
            clock: Option<&Bound<'_, PyAny>>,
            classifier: Py<PyAny>,
            notifier: Py<PyAny>,
            metrics: Option<&Bound<'_, PyAny>>,
            open_error: Py<PyAny>,
            states: (Py<PyAny>, Py<PyAny>, Py<PyAny>),
        ) -> PyResult<Self> {
            let cfg = Config {
                error_threshold,
                volume_threshold,
                sleep_window_ns: seconds_to_ns("sleep_window", sleep_window, false)?,
                half_open_requests,
                success_threshold,
                window_ns: seconds_to_ns("window_size", window_size, false)?,
                bucket_count,
                failure_threshold,
                sleep_window_multiplier,
                max_sleep_window_ns: seconds_to_ns("max_sleep_window", max_sleep_window, false)?,
            };
            cfg.validate().map_err(PyValueError::new_err)?;
            let sink = |method: &str| -> PyResult<Option<Py<PyAny>>> {
                match metrics {
                    Some(m) if !m.is_none() => Ok(Some(m.getattr(method)?.unbind())),
                    _ => Ok(None),
                }
            };
            let _ = py;
            Ok(Breaker {
                core: breaker::Breaker::new(cfg),
                time: TimeSource::from_py("CircuitBreakerConfig", clock)?,
                name: name.unbind(),
                classifier,
                notifier,
                on_success: sink("record_success")?,
                on_failure: sink("record_failure")?,
                on_rejection: sink("record_rejection")?,
                open_error,
                states: [states.0, states.1, states.2],
            })
        }

        /// Runs `func(*args, **kwargs)` through the breaker.
        #[pyo3(signature = (func, /, *args, **kwargs))]
        fn call(
            &self,
            py: Python<'_>,
            func: &Bound<'_, PyAny>,
            args: &Bound<'_, PyTuple>,
            kwargs: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Py<PyAny>> {
            self.guarded(py, || {
                if args.is_empty() && kwargs.is_none() {
                    func.call0()
                } else {
                    func.call(args, kwargs)
                }
            })
            .map(Bound::unbind)
        }

        /// `call` as a builtin bound to this breaker that takes its arguments the vectorcall
        /// way (no argument tuple unless the function has arguments to forward).
        #[getter]
        fn fast_call(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
            // SAFETY: FAST_CALL is a static method definition that lives for the whole process;
            // the new builtin keeps a strong reference to the breaker (its `self`).
            unsafe {
                let def = std::ptr::addr_of!(FAST_CALL.0).cast_mut();
                let ptr = ffi::PyCFunction_NewEx(def, slf.as_ptr(), std::ptr::null_mut());
                Ok(Bound::from_owned_ptr_or_err(slf.py(), ptr)?.unbind())
            }
        }

        /// Admits one call or raises CircuitBreakerOpenError. Pair it with `complete`.
        fn acquire(&self, py: Python<'_>) -> PyResult<Permit> {
            match self.core.try_acquire(|| self.now()) {
                Ok(inner) => {
                    if self.core.has_events() {
                        self.deliver(py);
                    }
                    Ok(Permit {
                        inner,
                        done: AtomicBool::new(false),
                    })
                }
                Err(rejected) => Err(self.rejection(py, rejected)),
            }
        }

        /// Ends an admitted call: `exc` None is a success, else it is classified. A permit is
        /// completed once; later completions (a late outcome after a timeout) are ignored.
        #[pyo3(signature = (permit, exc = None))]
        fn complete(&self, py: Python<'_>, permit: &Permit, exc: Option<&Bound<'_, PyAny>>) {
            if permit.done.swap(true, Ordering::AcqRel) {
                return;
            }
            match exc {
                None => self.finish(py, permit.inner, Outcome::Success, None),
                Some(exc) => {
                    let outcome = self.classify(py, exc);
                    self.finish(py, permit.inner, outcome, Some(exc));
                }
            }
        }

        /// Ends an admitted call with an outcome decided by the caller (0 success, 1 failure,
        /// 2 ignored); `exc` only names the error type for metrics.
        #[pyo3(signature = (permit, outcome, exc = None))]
        fn complete_as(
            &self,
            py: Python<'_>,
            permit: &Permit,
            outcome: u8,
            exc: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<()> {
            let outcome = outcome_code(outcome)?;
            if !permit.done.swap(true, Ordering::AcqRel) {
                self.finish(py, permit.inner, outcome, exc);
            }
            Ok(())
        }

        /// True if a call may run now; counts as an admission (see `record`).
        fn can_execute(&self, py: Python<'_>) -> bool {
            let admitted = self.core.try_acquire(|| self.now());
            if let Err(rejected) = admitted {
                let _ = self.rejection(py, rejected);
                return false;
            }
            if self.core.has_events() {
                self.deliver(py);
            }
            true
        }

        /// Records an outcome without a permit (manual use).
        #[pyo3(signature = (outcome, exc = None))]
        fn record(
            &self,
            py: Python<'_>,
            outcome: u8,
            exc: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<()> {
            let outcome = outcome_code(outcome)?;
            if self.core.record(outcome, || self.now()) {
                self.report(py, outcome, exc);
            }
            if self.core.has_events() {
                self.deliver(py);
            }
            Ok(())
        }

        /// Moves to `state` (0 closed, 1 open, 2 half-open) as decided outside this process;
        /// OPEN admits trials after `open_for` seconds. No-op while forced. True if it changed.
        #[pyo3(signature = (state, open_for = 0.0))]
        fn enter(&self, py: Python<'_>, state: u8, open_for: f64) -> PyResult<bool> {
            let to = match state {
                0 => State::Closed,
                1 => State::Open,
                2 => State::HalfOpen,
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "state must be 0 (closed), 1 (open) or 2 (half-open), got {state}"
                    )))
                }
            };
            if !open_for.is_finite() || open_for < 0.0 {
                return Err(PyValueError::new_err(format!(
                    "open_for must be a finite number >= 0, got {open_for}"
                )));
            }
            let changed = self
                .core
                .enter(to, self.now(), (open_for * NS_PER_SEC) as i64);
            self.deliver(py);
            Ok(changed)
        }

        fn force_open(&self, py: Python<'_>) {
            self.core.force_open(self.now());
            self.deliver(py);
        }

        fn force_closed(&self, py: Python<'_>) {
            self.core.force_closed(self.now());
            self.deliver(py);
        }

        fn clear_force(&self, py: Python<'_>) {
            self.core.clear_force();
            self.deliver(py);
        }

        fn reset(&self, py: Python<'_>) {
            self.core.reset();
            self.deliver(py);
        }

        /// The current state (a CircuitState member).
        #[getter]
        fn state(&self, py: Python<'_>) -> Py<PyAny> {
            self.state_obj(py, self.core.state())
        }

        /// The name.
        #[getter]
        fn name(&self, py: Python<'_>) -> Py<PyString> {
            self.name.clone_ref(py)
        }

        /// "open", "closed" or None: the force in effect.
        #[getter]
        fn forced(&self) -> Option<&'static str> {
            match self.core.snapshot(self.now()).force {
                breaker::Force::None => None,
                breaker::Force::Open => Some("open"),
                breaker::Force::Closed => Some("closed"),
            }
        }

        /// The contract's metrics dictionary.
        fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
            let snap = self.core.snapshot(self.now());
            let total = snap.successes + snap.failures;
            let out = PyDict::new(py);
            out.set_item("name", self.name.bind(py))?;
            out.set_item("state", self.state_obj(py, snap.state))?;
            out.set_item("total", total)?;
            out.set_item("success", snap.successes)?;
            out.set_item("failure", snap.failures)?;
            let error_rate = if total == 0 {
                0.0
            } else {
                snap.failures as f64 / total as f64
            };
            out.set_item("error_rate", error_rate)?;
            out.set_item("rejected", snap.rejected)?;
            out.set_item("in_flight", snap.in_flight)?;
            out.set_item("total_executions", snap.total_executions)?;
            out.set_item("generation", snap.generation)?;
            out.set_item("sleep_window", ns_to_seconds(snap.sleep_window_ns))?;
            out.set_item("orphaned", snap.orphaned)?;
            if let Some((running, ok, failed)) = snap.half_open {
                out.set_item("half_open_in_flight", running)?;
                out.set_item("half_open_successes", ok)?;
                out.set_item("half_open_failures", failed)?;
            }
            Ok(out)
        }

        fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
            visit.call(&self.classifier)?;
            visit.call(&self.notifier)?;
            visit.call(&self.on_success)?;
            visit.call(&self.on_failure)?;
            visit.call(&self.on_rejection)?;
            visit.call(&self.open_error)?;
            for state in &self.states {
                visit.call(state)?;
            }
            Ok(())
        }
    }

    /// The sliding window on its own.
    #[pyclass(frozen, module = "resilience._core")]
    pub struct Window {
        inner: window::Window,
        time: TimeSource,
    }

    #[pymethods]
    impl Window {
        #[new]
        #[pyo3(signature = (window_size, bucket_count, clock = None))]
        fn new(
            window_size: &Bound<'_, PyAny>,
            bucket_count: u32,
            clock: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Self> {
            let window_ns = seconds_to_ns("SlidingWindow.window_size", window_size, false)?;
            if window_ns < 1 {
                return Err(PyValueError::new_err(format!(
                    "SlidingWindow.window_size must be > 0, got {}",
                    window_size.repr()?
                )));
            }
            if bucket_count < 1 {
                return Err(PyValueError::new_err(format!(
                    "SlidingWindow.bucket_count must be >= 1, got {bucket_count}"
                )));
            }
            Ok(Window {
                inner: window::Window::new(window_ns, bucket_count),
                time: TimeSource::from_py("SlidingWindow", clock)?,
            })
        }

        fn record_success(&self) {
            self.inner.record(self.time.now(), false);
        }

        fn record_failure(&self) {
            self.inner.record(self.time.now(), true);
        }

        fn counts(&self) -> (u64, u64) {
            self.inner.counts(self.time.now())
        }

        fn total(&self) -> u64 {
            let (ok, failed) = self.inner.counts(self.time.now());
            ok + failed
        }

        fn error_rate(&self) -> f64 {
            let (ok, failed) = self.inner.counts(self.time.now());
            if ok + failed == 0 {
                0.0
            } else {
                failed as f64 / (ok + failed) as f64
            }
        }

        fn reset(&self) {
            self.inner.clear();
        }
    }

    #[pymodule(gil_used = false)]
    fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("MAX_HALF_OPEN_REQUESTS", breaker::MAX_HALF_OPEN_REQUESTS)?;
        m.add_class::<PyManualClock>()?;
        m.add_class::<Permit>()?;
        m.add_class::<Breaker>()?;
        m.add_class::<Window>()?;
        Ok(())
    }
}
