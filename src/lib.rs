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
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
        /// `open_error`'s `tp_new` (BaseException's): a rejection builds its exception with it
        /// alone, so no Python `__init__` frame runs on the rejection path.
        open_error_new: ffi::newfunc,
        states: [Py<PyAny>; 3],
    }

    /// The `tp_new` slot of `cls`, which must be a subclass of BaseException whose `__init__`
    /// only stores its arguments in `args` (CircuitBreakerOpenError's contract with the core).
    fn exception_new(py: Python<'_>, cls: &Py<PyAny>) -> PyResult<ffi::newfunc> {
        let cls = cls.bind(py);
        let is_exception_type = cls
            .cast::<pyo3::types::PyType>()
            .map(|t| t.is_subclass_of::<pyo3::exceptions::PyBaseException>())
            .unwrap_or(Ok(false))?;
        if !is_exception_type {
            return Err(PyTypeError::new_err(format!(
                "Breaker.open_error must be an exception type, got {}",
                cls.repr()?
            )));
        }
        // SAFETY: `cls` is a type object; PyType_GetSlot reads its slot table (static types are
        // accepted since 3.10, the oldest version this module supports).
        let slot = unsafe { ffi::PyType_GetSlot(cls.as_ptr().cast(), ffi::Py_tp_new) };
        if slot.is_null() {
            return Err(PyTypeError::new_err(format!(
                "Breaker.open_error {} cannot be instantiated",
                cls.repr()?
            )));
        }
        // SAFETY: the Py_tp_new slot holds a `newfunc`.
        Ok(unsafe { std::mem::transmute::<*mut std::ffi::c_void, ffi::newfunc>(slot) })
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
            let args = (
                self.name.clone_ref(py),
                self.state_obj(py, rejected.state),
                retry_after,
            );
            let built = args.into_pyobject(py).and_then(|args| {
                // SAFETY: `open_error` is a type (checked in `new`) and `open_error_new` its
                // tp_new slot; tp_new takes a borrowed tuple and a NULL keyword dict, and
                // returns a new reference or NULL with an exception set.
                unsafe {
                    let exc = (self.open_error_new)(
                        self.open_error.as_ptr().cast::<ffi::PyTypeObject>(),
                        args.as_ptr(),
                        std::ptr::null_mut(),
                    );
                    Bound::from_owned_ptr_or_err(py, exc)
                }
            });
            match built {
                Ok(exc) => PyErr::from_value(exc),
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

    /// The arguments a caller passed for the protected function, in the form they arrived.
    #[derive(Clone, Copy)]
    enum Forward<'a, 'py> {
        /// The vectorcall layout: `nargs` positional values at `args`, then one value per name in
        /// the `kwnames` tuple (NULL when there are none). Borrowed from the caller's frame.
        Vector {
            py: Python<'py>,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        },
        /// A tuple and an optional dict, as `tp_call` receives them.
        Packed {
            args: &'a Bound<'py, PyTuple>,
            kwargs: Option<&'a Bound<'py, PyDict>>,
        },
    }

    impl<'py> Forward<'_, 'py> {
        fn is_empty(&self) -> bool {
            match *self {
                Forward::Vector { nargs, kwnames, .. } => nargs == 0 && kwnames.is_null(),
                Forward::Packed { args, kwargs } => {
                    args.is_empty() && kwargs.map_or(true, |k| k.is_empty())
                }
            }
        }

        /// `func(*args, **kwargs)`; no tuple is built when there is nothing to forward.
        fn call(&self, func: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
            if self.is_empty() {
                return func.call0();
            }
            match *self {
                Forward::Packed { args, kwargs } => func.call(args, kwargs),
                Forward::Vector { .. } => {
                    let (args, kwargs) = self.pack(None)?;
                    func.call(args, kwargs.as_ref())
                }
            }
        }

        /// The positional values (after `first`, when given) as a tuple, and the keywords as a
        /// dict (None when there are none).
        fn pack(
            &self,
            first: Option<&Bound<'py, PyAny>>,
        ) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
            match *self {
                Forward::Packed { args, kwargs } => {
                    let args = match first {
                        None => args.clone(),
                        Some(first) => PyTuple::new(
                            args.py(),
                            std::iter::once(first.clone())
                                .chain(args)
                                .collect::<Vec<_>>(),
                        )?,
                    };
                    Ok((args, kwargs.cloned()))
                }
                Forward::Vector {
                    py,
                    args,
                    nargs,
                    kwnames,
                } => {
                    // SAFETY: `args` holds `nargs` positional values then one per keyword name,
                    // all borrowed references that outlive this call (the caller's frame).
                    let arg = |i: ffi::Py_ssize_t| unsafe {
                        Bound::from_borrowed_ptr(py, *args.offset(i))
                    };
                    let positional = PyTuple::new(
                        py,
                        first
                            .cloned()
                            .into_iter()
                            .chain((0..nargs).map(arg))
                            .collect::<Vec<_>>(),
                    )?;
                    if kwnames.is_null() {
                        return Ok((positional, None));
                    }
                    // SAFETY: a non-NULL `kwnames` is a tuple of str.
                    let names = unsafe { Bound::<PyAny>::from_borrowed_ptr(py, kwnames) };
                    let names = names.cast_into::<PyTuple>()?;
                    let dict = PyDict::new(py);
                    for (j, name) in names.iter().enumerate() {
                        dict.set_item(name, arg(nargs + j as ffi::Py_ssize_t))?;
                    }
                    Ok((positional, Some(dict)))
                }
            }
        }
    }

    /// A method definition for a builtin made at run time over a `self` object.
    struct MethodDef(ffi::PyMethodDef);
    // SAFETY: the definition is immutable after construction; CPython only reads it.
    unsafe impl Sync for MethodDef {}

    impl MethodDef {
        /// A builtin that calls this definition with `slf` as its `self` (which it keeps alive).
        fn bind(&'static self, slf: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
            // SAFETY: `self` is a static method definition that lives for the whole process; the
            // new builtin keeps a strong reference to `slf`.
            unsafe {
                let def = std::ptr::addr_of!(self.0).cast_mut();
                let ptr = ffi::PyCFunction_NewEx(def, slf.as_ptr(), std::ptr::null_mut());
                Ok(Bound::from_owned_ptr_or_err(slf.py(), ptr)?.unbind())
            }
        }
    }

    static BREAKER_CALL: MethodDef = MethodDef(ffi::PyMethodDef {
        ml_name: c"call".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: breaker_fast_call,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc:
            c"call(func, /, *args, **kwargs)\n--\n\nRuns func(*args, **kwargs) through the breaker."
                .as_ptr(),
    });

    static RETRY_CALL: MethodDef = MethodDef(ffi::PyMethodDef {
        ml_name: c"call".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: retry_fast_call,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: c"call(func, /, *args, **kwargs)\n--\n\nRuns func(*args, **kwargs) with retries."
            .as_ptr(),
    });

    /// The body of a METH_FASTCALL | METH_KEYWORDS builtin whose `args[0]` is the function to
    /// run and the rest are forwarded to it: panics become PanicException, errors are restored.
    ///
    /// # Safety
    /// The arguments must be as CPython passes them to such a builtin, and `slf` must be a `T`.
    unsafe fn vector_entry<T>(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
        body: for<'py> fn(&T, &Bound<'py, PyAny>, Forward<'_, 'py>) -> PyResult<Bound<'py, PyAny>>,
    ) -> *mut ffi::PyObject
    where
        T: pyo3::PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
    {
        // SAFETY: CPython calls builtins with an attached thread state.
        let py = unsafe { Python::assume_attached() };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if nargs < 1 {
                return Err(PyTypeError::new_err(
                    "call() missing the function to call (call(func, /, *args, **kwargs))",
                ));
            }
            // Borrowed, not Bound: no reference-count traffic on `self` or the function, which
            // every thread shares (on free-threaded builds that traffic is contended).
            // SAFETY: `slf` is a T (the builtin was made over one); `args[0]` is the function.
            let slf = unsafe { Borrowed::<'_, '_, PyAny>::from_ptr(py, slf) };
            let target = unsafe { slf.cast_unchecked::<T>() };
            let func = unsafe { Borrowed::<'_, '_, PyAny>::from_ptr(py, *args) };
            let rest = Forward::Vector {
                py,
                // SAFETY: one past the function, still inside the caller's argument array.
                args: unsafe { args.add(1) },
                nargs: nargs - 1,
                kwnames,
            };
            body(target.get(), &func, rest)
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

    /// METH_FASTCALL entry point of `Breaker.fast_call`.
    unsafe extern "C" fn breaker_fast_call(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: BREAKER_CALL is only bound over a Breaker (`Breaker.fast_call`).
        unsafe {
            vector_entry::<Breaker>(slf, args, nargs, kwnames, |b, func, rest| {
                b.guarded(func.py(), || rest.call(func))
            })
        }
    }

    /// METH_FASTCALL entry point of `RetryCore.fast_call`.
    unsafe extern "C" fn retry_fast_call(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: RETRY_CALL is only bound over a RetryCore (`RetryCore.fast_call`).
        unsafe { vector_entry::<RetryCore>(slf, args, nargs, kwnames, RetryCore::run) }
    }

    /// Runs `body` with `exc` as the exception being handled (`sys.exception()`), as inside an
    /// `except` block: an exception raised by `body` gets `exc` as its `__context__`.
    fn handling<R>(exc: &Bound<'_, PyAny>, body: impl FnOnce() -> R) -> R {
        // SAFETY: PyErr_GetExcInfo returns new references (or NULL) that PyErr_SetExcInfo steals
        // back; the references passed in the first PyErr_SetExcInfo are new ones we create.
        unsafe {
            let (mut ty, mut value, mut tb) = (
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            ffi::PyErr_GetExcInfo(&mut ty, &mut value, &mut tb);
            let exc_ty = ffi::Py_TYPE(exc.as_ptr()).cast::<ffi::PyObject>();
            ffi::Py_INCREF(exc_ty);
            ffi::PyErr_SetExcInfo(
                exc_ty,
                exc.clone().into_ptr(),
                ffi::PyException_GetTraceback(exc.as_ptr()),
            );
            let result = body();
            ffi::PyErr_SetExcInfo(ty, value, tb);
            result
        }
    }

    /// What a decorated function calls: a breaker, a retry, or any Python `runner(fn, ...)`.
    enum GuardTarget {
        Breaker(Py<Breaker>),
        Retry(Py<RetryCore>),
        Runner(Py<PyAny>),
    }

    /// A function decorated with a breaker or a retry. Calling it runs the function through its
    /// target without a Python frame; `__get__` binds it like a function, so decorated methods
    /// receive `self`. Python subclasses it (`resilience._wrap`) to get a `__dict__` for
    /// `functools.update_wrapper`.
    #[pyclass(frozen, subclass, module = "resilience._core")]
    pub struct Guarded {
        target: GuardTarget,
        func: Py<PyAny>,
    }

    #[pymethods]
    impl Guarded {
        #[new]
        fn new(target: &Bound<'_, PyAny>, func: Py<PyAny>) -> PyResult<Self> {
            if !func.bind(target.py()).is_callable() {
                return Err(PyTypeError::new_err(format!(
                    "Guarded(target, func): func must be callable, got {}",
                    func.bind(target.py()).repr()?
                )));
            }
            let target = if let Ok(b) = target.cast::<Breaker>() {
                GuardTarget::Breaker(b.clone().unbind())
            } else if let Ok(r) = target.cast::<RetryCore>() {
                GuardTarget::Retry(r.clone().unbind())
            } else if target.is_callable() {
                GuardTarget::Runner(target.clone().unbind())
            } else {
                return Err(PyTypeError::new_err(format!(
                    "Guarded(target, func): target must be a Breaker, a RetryCore or a callable \
                     runner(func, *args, **kwargs), got {}",
                    target.repr()?
                )));
            };
            Ok(Guarded { target, func })
        }

        #[pyo3(signature = (*args, **kwargs))]
        fn __call__<'py>(
            &self,
            py: Python<'py>,
            args: &Bound<'py, PyTuple>,
            kwargs: Option<&Bound<'py, PyDict>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let func = self.func.bind(py);
            let rest = Forward::Packed { args, kwargs };
            match &self.target {
                GuardTarget::Breaker(b) => b.get().guarded(py, || rest.call(func)),
                GuardTarget::Retry(r) => RetryCore::run(r.get(), func, rest),
                GuardTarget::Runner(runner) => {
                    let (args, kwargs) = rest.pack(Some(func))?;
                    runner.bind(py).call(args, kwargs.as_ref())
                }
            }
        }

        fn __get__(
            slf: &Bound<'_, Self>,
            obj: Option<&Bound<'_, PyAny>>,
            _owner: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Py<PyAny>> {
            match obj {
                Some(obj) if !obj.is_none() => {
                    static METHOD_TYPE: pyo3::sync::PyOnceLock<Py<PyAny>> =
                        pyo3::sync::PyOnceLock::new();
                    let py = slf.py();
                    let method = METHOD_TYPE.get_or_try_init(py, || {
                        py.import("types")?.getattr("MethodType").map(Bound::unbind)
                    })?;
                    Ok(method.bind(py).call1((slf, obj))?.unbind())
                }
                _ => Ok(slf.clone().into_any().unbind()),
            }
        }

        /// The decorated function.
        #[getter]
        fn func(&self, py: Python<'_>) -> Py<PyAny> {
            self.func.clone_ref(py)
        }

        fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
            match &self.target {
                GuardTarget::Breaker(b) => visit.call(b)?,
                GuardTarget::Retry(r) => visit.call(r)?,
                GuardTarget::Runner(r) => visit.call(r)?,
            }
            visit.call(&self.func)
        }
    }

    /// The first attempt of `resilience.Retry`, without a Python frame: counts the call, runs
    /// the function (through the breaker, if any) and returns a result no one rejects. Anything
    /// else (an exception, a result `retry_on_result` must judge) goes to the owning Python
    /// `Retry`, which decides, sleeps and retries.
    #[pyclass(frozen, module = "resilience._core")]
    pub struct RetryCore {
        calls: AtomicU64,
        /// The Retry: `_first_failure(fn, start, exc)`, `_after_result(fn, start, result, args,
        /// kwargs)` and `_retry_sync(run, delay, fn, args, kwargs)`.
        owner: Py<PyAny>,
        /// `breaker.call`, when attempts run through a breaker.
        breaker_call: Option<Py<PyAny>>,
        /// The clock's `now`, when the time budget needs the first attempt's start.
        now: Option<Py<PyAny>>,
        /// Set when results may be rejected (`retry_on_result`).
        judges_results: bool,
    }

    impl RetryCore {
        fn run<'py>(
            &self,
            func: &Bound<'py, PyAny>,
            rest: Forward<'_, 'py>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let py = func.py();
            // Relaxed: a statistic.
            self.calls.fetch_add(1, Ordering::Relaxed);
            let start = match &self.now {
                Some(now) => now.bind(py).call0()?,
                None => py.None().into_bound(py),
            };
            let first = match &self.breaker_call {
                None => rest.call(func),
                Some(call) => {
                    let (args, kwargs) = rest.pack(Some(func))?;
                    call.bind(py).call(args, kwargs.as_ref())
                }
            };
            let owner = self.owner.bind(py);
            match first {
                Ok(result) if !self.judges_results => Ok(result),
                Ok(result) => {
                    let (args, kwargs) = rest.pack(None)?;
                    owner.call_method1(
                        pyo3::intern!(py, "_after_result"),
                        (func, start, result, args, kwargs),
                    )
                }
                // Only Exception is retried: KeyboardInterrupt, SystemExit, CancelledError pass.
                Err(err) if !err.is_instance_of::<PyException>(py) => Err(err),
                Err(err) => {
                    let exc = err.value(py).clone().into_any();
                    let plan = handling(&exc, || {
                        owner.call_method1(pyo3::intern!(py, "_first_failure"), (func, start, &exc))
                    })?;
                    if plan.is_none() {
                        return Err(err); // not retried: the original exception, unchanged
                    }
                    drop(exc);
                    drop(err);
                    let (run, delay) = plan.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>()?;
                    let (args, kwargs) = rest.pack(None)?;
                    owner.call_method1(
                        pyo3::intern!(py, "_retry_sync"),
                        (run, delay, func, args, kwargs),
                    )
                }
            }
        }
    }

    #[pymethods]
    impl RetryCore {
        #[new]
        #[pyo3(signature = (owner, *, breaker_call, now, judges_results))]
        fn new(
            owner: Py<PyAny>,
            breaker_call: Option<Py<PyAny>>,
            now: Option<Py<PyAny>>,
            judges_results: bool,
        ) -> Self {
            RetryCore {
                calls: AtomicU64::new(0),
                owner,
                breaker_call,
                now,
                judges_results,
            }
        }

        /// Calls started so far.
        #[getter]
        fn calls(&self) -> u64 {
            self.calls.load(Ordering::Relaxed)
        }

        /// Counts a call that runs elsewhere (`Retry.call_async`).
        fn count_call(&self) {
            self.calls.fetch_add(1, Ordering::Relaxed);
        }

        /// `call(func, /, *args, **kwargs)` as a builtin bound to this core, taking its
        /// arguments the vectorcall way.
        #[getter]
        fn fast_call(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
            RETRY_CALL.bind(slf.as_any())
        }

        fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
            visit.call(&self.owner)?;
            visit.call(&self.breaker_call)?;
            visit.call(&self.now)
        }
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
            let open_error_new = exception_new(py, &open_error)?;
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
                open_error_new,
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
            BREAKER_CALL.bind(slf.as_any())
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
        m.add_class::<Guarded>()?;
        m.add_class::<RetryCore>()?;
        Ok(())
    }
}
