//! `resilience._core`: the Python binding of the breaker and window core.
//!
//! The algorithms live in [`breaker`] and [`window`] and know nothing of Python; this file only
//! converts arguments, reads the clock, runs the protected callable, and delivers events and
//! metrics to Python objects, never while holding a lock of the core.

pub mod breaker;
pub mod clock;
mod sync;
pub mod tally;
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

        /// Tells the collector about a counted outcome (nothing to do without one: inlined).
        #[inline]
        fn report(&self, py: Python<'_>, outcome: Outcome, exc: Option<&Bound<'_, PyAny>>) {
            let sink = match outcome {
                Outcome::Success => &self.on_success,
                Outcome::Failure => &self.on_failure,
                Outcome::Ignored => return,
            };
            if sink.is_some() {
                self.report_to_collector(py, outcome, exc);
            }
        }

        #[cold]
        #[inline(never)]
        fn report_to_collector(
            &self,
            py: Python<'_>,
            outcome: Outcome,
            exc: Option<&Bound<'_, PyAny>>,
        ) {
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
        trap(py, || {
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
        })
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

    // ------------------------------------------------------------------ decorated functions

    /// What a decorated function runs through.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum GuardKind {
        /// A core `Breaker`: `Breaker::guarded` around the function.
        Breaker,
        /// A `RetryCore`: its first attempt, then the owning Python `Retry`.
        Retry,
        /// Any Python callable, called as `runner(func, *args, **kwargs)`.
        Runner,
    }

    /// An instance of `resilience._core.Guarded`: a function decorated with a breaker or a retry.
    ///
    /// This is a type of our own rather than a `#[pyclass]` because PyO3 classes are called
    /// through `tp_call`, which costs an argument tuple, a keyword dict and PyO3's generic
    /// argument parsing on every call. This one implements the vectorcall protocol, so calling a
    /// decorated function costs about what `cb.call(f)` does. It has a `__dict__` (for
    /// `functools.update_wrapper`), binds like a function (`__get__`, and the method-descriptor
    /// flag that lets `obj.method()` skip the bound method) and takes weak references.
    #[repr(C)]
    struct GuardedObject {
        ob_base: ffi::PyObject,
        /// The vectorcall entry point; `__vectorcalloffset__` points here.
        vectorcall: Option<ffi::vectorcallfunc>,
        /// Strong references, set once by `tp_new`; NULL only after `tp_clear`, which the
        /// collector runs on unreachable objects only, so a call in progress never sees it.
        target: *mut ffi::PyObject,
        func: *mut ffi::PyObject,
        /// The instance dict (`__dictoffset__`), created on first use by CPython.
        dict: *mut ffi::PyObject,
        /// The weak reference list (`__weaklistoffset__`), managed by CPython.
        weakrefs: *mut ffi::PyObject,
        kind: GuardKind,
    }

    /// `Py_TPFLAGS_HAVE_VECTORCALL`. The stable ABI names it only from 3.12, but CPython has
    /// honoured it since 3.8 for types made by `PyType_FromSpec` with a `__vectorcalloffset__`
    /// member; the type is immutable, the case 3.8-3.11 support.
    const TPFLAGS_HAVE_VECTORCALL: std::ffi::c_ulong = 1 << 11;
    /// `PY_VECTORCALL_ARGUMENTS_OFFSET`: the flag bit of `nargsf` (same story as above).
    const VECTORCALL_ARGUMENTS_OFFSET: usize = 1 << (usize::BITS - 1);

    /// Runs a C entry point's body: a panic becomes PanicException, an error is restored and
    /// NULL returned, as CPython expects.
    fn trap<'py>(
        py: Python<'py>,
        body: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
    ) -> *mut ffi::PyObject {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
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

    impl GuardedObject {
        /// Runs the decorated function with `rest` through the target.
        ///
        /// # Safety
        /// `slf` must point to a live `GuardedObject`.
        unsafe fn run<'py>(
            py: Python<'py>,
            slf: *mut ffi::PyObject,
            rest: Forward<'_, 'py>,
        ) -> PyResult<Bound<'py, PyAny>> {
            // SAFETY: the caller guarantees `slf` is a GuardedObject.
            let this = unsafe { &*slf.cast::<GuardedObject>() };
            if this.target.is_null() || this.func.is_null() {
                return Err(PyTypeError::new_err(
                    "this decorated function was cleared by the garbage collector",
                ));
            }
            // Borrowed, not Bound: the caller's reference keeps `slf`, and so these, alive; no
            // reference-count traffic (contended on free-threaded builds) per call.
            // SAFETY: both are live objects owned by `slf`.
            let target = unsafe { Borrowed::<'_, '_, PyAny>::from_ptr(py, this.target) };
            let func = unsafe { Borrowed::<'_, '_, PyAny>::from_ptr(py, this.func) };
            match this.kind {
                GuardKind::Breaker => {
                    // SAFETY: `tp_new` checked that the target is a Breaker.
                    let breaker = unsafe { target.cast_unchecked::<Breaker>() };
                    breaker.get().guarded(py, || rest.call(&func))
                }
                GuardKind::Retry => {
                    // SAFETY: `tp_new` checked that the target is a RetryCore.
                    let retry = unsafe { target.cast_unchecked::<RetryCore>() };
                    RetryCore::run(retry.get(), &func, rest)
                }
                GuardKind::Runner => {
                    let (args, kwargs) = rest.pack(Some(&func))?;
                    target.call(args, kwargs.as_ref())
                }
            }
        }
    }

    /// `Guarded(target, func, /)`.
    unsafe extern "C" fn guarded_new(
        subtype: *mut ffi::PyTypeObject,
        args: *mut ffi::PyObject,
        kwargs: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython calls tp_new with an attached thread state.
        let py = unsafe { Python::assume_attached() };
        trap(py, || {
            // SAFETY: tp_new receives a tuple and NULL or a dict.
            let args = unsafe { Borrowed::<'_, '_, PyAny>::from_ptr(py, args) };
            let args = args.cast::<PyTuple>()?;
            if !kwargs.is_null() && unsafe { ffi::PyDict_Size(kwargs) } > 0 {
                return Err(PyTypeError::new_err(
                    "Guarded(target, func) takes no keyword arguments",
                ));
            }
            if args.len() != 2 {
                return Err(PyTypeError::new_err(format!(
                    "Guarded(target, func) takes 2 arguments, got {}",
                    args.len()
                )));
            }
            let target = args.get_item(0)?;
            let func = args.get_item(1)?;
            if !func.is_callable() {
                return Err(PyTypeError::new_err(format!(
                    "Guarded(target, func): func must be callable, got {}",
                    func.repr()?
                )));
            }
            let kind = if target.is_instance_of::<Breaker>() {
                GuardKind::Breaker
            } else if target.is_instance_of::<RetryCore>() {
                GuardKind::Retry
            } else if target.is_callable() {
                GuardKind::Runner
            } else {
                return Err(PyTypeError::new_err(format!(
                    "Guarded(target, func): target must be a Breaker, a RetryCore or a callable \
                     runner(func, *args, **kwargs), got {}",
                    target.repr()?
                )));
            };
            // SAFETY: PyType_GenericAlloc returns a zeroed, GC-tracked instance of `subtype`
            // (or NULL with an exception set); every field is set before anything can run.
            unsafe {
                let obj = ffi::PyType_GenericAlloc(subtype, 0);
                let obj = Bound::from_owned_ptr_or_err(py, obj)?;
                let this = obj.as_ptr().cast::<GuardedObject>();
                (*this).vectorcall = Some(guarded_vectorcall);
                (*this).target = target.into_ptr();
                (*this).func = func.into_ptr();
                (*this).kind = kind;
                Ok(obj)
            }
        })
    }

    /// The vectorcall entry point: a decorated function called from Python.
    unsafe extern "C" fn guarded_vectorcall(
        callable: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargsf: libc::size_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython calls vectorcall functions with an attached thread state.
        let py = unsafe { Python::assume_attached() };
        let rest = Forward::Vector {
            py,
            args,
            nargs: (nargsf & !VECTORCALL_ARGUMENTS_OFFSET) as ffi::Py_ssize_t,
            kwnames,
        };
        // SAFETY: this entry point is only installed on GuardedObjects.
        trap(py, || unsafe { GuardedObject::run(py, callable, rest) })
    }

    /// `tp_call`, for callers that do not use vectorcall (`PyObject_Call` with a tuple).
    unsafe extern "C" fn guarded_call(
        callable: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        kwargs: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython calls tp_call with an attached thread state, a tuple and NULL or a dict.
        let py = unsafe { Python::assume_attached() };
        trap(py, || unsafe {
            let args = Borrowed::<'_, '_, PyAny>::from_ptr(py, args).cast_unchecked::<PyTuple>();
            let kwargs = (!kwargs.is_null()).then(|| {
                Borrowed::<'_, '_, PyAny>::from_ptr(py, kwargs).cast_unchecked::<PyDict>()
            });
            let rest = Forward::Packed {
                args: &args,
                kwargs: kwargs.as_deref(),
            };
            GuardedObject::run(py, callable, rest)
        })
    }

    /// `__get__`: binds like a function, so a decorated method receives `self`.
    unsafe extern "C" fn guarded_descr_get(
        slf: *mut ffi::PyObject,
        obj: *mut ffi::PyObject,
        _owner: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython calls tp_descr_get with an attached thread state.
        let py = unsafe { Python::assume_attached() };
        trap(py, || {
            // SAFETY: `slf` is live for the call.
            let slf = unsafe { Borrowed::<'_, '_, PyAny>::from_ptr(py, slf) };
            if obj.is_null() || obj == unsafe { ffi::Py_None() } {
                return Ok(slf.to_owned());
            }
            // SAFETY: a non-NULL `obj` is live for the call.
            let obj = unsafe { Borrowed::<'_, '_, PyAny>::from_ptr(py, obj) };
            static METHOD_TYPE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
            let method = METHOD_TYPE.get_or_try_init(py, || {
                py.import("types")?.getattr("MethodType").map(Bound::unbind)
            })?;
            method.bind(py).call1((slf, obj))
        })
    }

    /// `<guarded 'qualname'>`.
    unsafe extern "C" fn guarded_repr(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
        // SAFETY: CPython calls tp_repr with an attached thread state.
        let py = unsafe { Python::assume_attached() };
        trap(py, || {
            // SAFETY: `slf` is a live GuardedObject.
            let func = unsafe { (*slf.cast::<GuardedObject>()).func };
            if func.is_null() {
                return Ok(PyString::new(py, "<guarded (cleared)>").into_any());
            }
            // SAFETY: non-NULL, owned by `slf`.
            let func = unsafe { Borrowed::<'_, '_, PyAny>::from_ptr(py, func) };
            let shown = match func.getattr(pyo3::intern!(py, "__qualname__")) {
                Ok(name) => name.repr()?,
                Err(_) => func.repr()?,
            };
            Ok(PyString::new(py, &format!("<guarded {shown}>")).into_any())
        })
    }

    /// `__reduce__`: pickled by reference, as functions are, under the `__module__` and
    /// `__qualname__` that `functools.update_wrapper` copied from the decorated function.
    unsafe extern "C" fn guarded_reduce(
        slf: *mut ffi::PyObject,
        _unused: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython calls METH_NOARGS methods with an attached thread state.
        let py = unsafe { Python::assume_attached() };
        trap(py, || {
            // SAFETY: `slf` is live for the call.
            let slf = unsafe { Borrowed::<'_, '_, PyAny>::from_ptr(py, slf) };
            slf.getattr(pyo3::intern!(py, "__qualname__")).map_err(|_| {
                PyTypeError::new_err(
                    "cannot pickle a Guarded without a __qualname__ \
                         (wrap it with functools.update_wrapper)",
                )
            })
        })
    }

    /// Drops the references the object holds (`tp_clear`, and part of `tp_dealloc`).
    unsafe extern "C" fn guarded_clear(slf: *mut ffi::PyObject) -> std::ffi::c_int {
        // SAFETY: `slf` is a GuardedObject; each field is set to NULL before its reference is
        // dropped, as Py_CLEAR does, so a finalizer that runs meanwhile never sees it.
        unsafe {
            let this = slf.cast::<GuardedObject>();
            for field in [
                std::ptr::addr_of_mut!((*this).target),
                std::ptr::addr_of_mut!((*this).func),
                std::ptr::addr_of_mut!((*this).dict),
            ] {
                let old = std::mem::replace(&mut *field, std::ptr::null_mut());
                if !old.is_null() {
                    ffi::Py_DECREF(old);
                }
            }
        }
        0
    }

    unsafe extern "C" fn guarded_traverse(
        slf: *mut ffi::PyObject,
        visit: ffi::visitproc,
        arg: *mut std::ffi::c_void,
    ) -> std::ffi::c_int {
        // SAFETY: `slf` is a GuardedObject; a heap type's instances visit their type too.
        unsafe {
            let this = slf.cast::<GuardedObject>();
            for obj in [
                ffi::Py_TYPE(slf).cast::<ffi::PyObject>(),
                (*this).target,
                (*this).func,
                (*this).dict,
            ] {
                if !obj.is_null() {
                    let found = visit(obj, arg);
                    if found != 0 {
                        return found;
                    }
                }
            }
        }
        0
    }

    unsafe extern "C" fn guarded_dealloc(slf: *mut ffi::PyObject) {
        // SAFETY: the last reference to a GuardedObject is gone; untrack it, clear weak
        // references and fields, free it with its type's tp_free and release the type, which
        // every instance of a heap type holds.
        unsafe {
            ffi::PyObject_GC_UnTrack(slf.cast());
            if !(*slf.cast::<GuardedObject>()).weakrefs.is_null() {
                ffi::PyObject_ClearWeakRefs(slf);
            }
            guarded_clear(slf);
            let tp = ffi::Py_TYPE(slf);
            let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
            let free = std::mem::transmute::<*mut std::ffi::c_void, ffi::freefunc>(free);
            free(slf.cast());
            ffi::Py_DECREF(tp.cast());
        }
    }

    /// Tables CPython keeps pointers to for the type's whole life.
    struct StaticDefs<T>(T);
    // SAFETY: immutable after construction; CPython only reads them.
    unsafe impl<T> Sync for StaticDefs<T> {}

    static GUARDED_GETSET: StaticDefs<[ffi::PyGetSetDef; 2]> = StaticDefs([
        ffi::PyGetSetDef {
            name: c"__dict__".as_ptr(),
            get: Some(ffi::PyObject_GenericGetDict),
            set: Some(ffi::PyObject_GenericSetDict),
            doc: std::ptr::null(),
            closure: std::ptr::null_mut(),
        },
        ffi::PyGetSetDef {
            name: std::ptr::null(),
            get: None,
            set: None,
            doc: std::ptr::null(),
            closure: std::ptr::null_mut(),
        },
    ]);

    static GUARDED_METHODS: StaticDefs<[ffi::PyMethodDef; 2]> = StaticDefs([
        ffi::PyMethodDef {
            ml_name: c"__reduce__".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: guarded_reduce,
            },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: c"Pickled by reference: the decorated function's qualified name.".as_ptr(),
        },
        ffi::PyMethodDef::zeroed(),
    ]);

    /// Creates the `Guarded` type (once per module).
    fn guarded_type(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        let member =
            |name: &'static std::ffi::CStr, code, offset: usize, doc: *const _| ffi::PyMemberDef {
                name: name.as_ptr(),
                type_code: code,
                offset: offset as ffi::Py_ssize_t,
                flags: ffi::Py_READONLY,
                doc,
            };
        let none = std::ptr::null();
        // PyType_FromSpec copies the members into the type; the vector can go afterwards.
        let mut members = vec![
            member(
                c"__vectorcalloffset__",
                ffi::Py_T_PYSSIZET,
                std::mem::offset_of!(GuardedObject, vectorcall),
                none,
            ),
            member(
                c"__dictoffset__",
                ffi::Py_T_PYSSIZET,
                std::mem::offset_of!(GuardedObject, dict),
                none,
            ),
            member(
                c"__weaklistoffset__",
                ffi::Py_T_PYSSIZET,
                std::mem::offset_of!(GuardedObject, weakrefs),
                none,
            ),
            member(
                c"func",
                ffi::Py_T_OBJECT_EX,
                std::mem::offset_of!(GuardedObject, func),
                c"The decorated function.".as_ptr(),
            ),
            ffi::PyMemberDef::default(),
        ];
        let slot = |slot, pfunc: *mut std::ffi::c_void| ffi::PyType_Slot { slot, pfunc };
        let mut slots = [
            slot(ffi::Py_tp_new, guarded_new as *mut _),
            slot(ffi::Py_tp_dealloc, guarded_dealloc as *mut _),
            slot(ffi::Py_tp_traverse, guarded_traverse as *mut _),
            slot(ffi::Py_tp_clear, guarded_clear as *mut _),
            slot(ffi::Py_tp_call, guarded_call as *mut _),
            slot(ffi::Py_tp_descr_get, guarded_descr_get as *mut _),
            slot(ffi::Py_tp_repr, guarded_repr as *mut _),
            slot(ffi::Py_tp_members, members.as_mut_ptr().cast()),
            slot(
                ffi::Py_tp_getset,
                GUARDED_GETSET.0.as_ptr().cast_mut().cast(),
            ),
            slot(
                ffi::Py_tp_methods,
                GUARDED_METHODS.0.as_ptr().cast_mut().cast(),
            ),
            slot(
                ffi::Py_tp_doc,
                c"Guarded(target, func, /)\n--\n\n\
                  A function decorated with a breaker or a retry: calling it runs func through \
                  target (a Breaker, a RetryCore, or a callable runner(func, *args, **kwargs))."
                    .as_ptr()
                    .cast_mut()
                    .cast(),
            ),
            slot(0, std::ptr::null_mut()),
        ];
        let flags = ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_HAVE_GC
            | ffi::Py_TPFLAGS_IMMUTABLETYPE
            | ffi::Py_TPFLAGS_METHOD_DESCRIPTOR
            | TPFLAGS_HAVE_VECTORCALL;
        let mut spec = ffi::PyType_Spec {
            // CPython keeps this pointer as the type's tp_name: a static string.
            name: c"resilience._core.Guarded".as_ptr(),
            basicsize: std::mem::size_of::<GuardedObject>() as std::ffi::c_int,
            itemsize: 0,
            flags: flags as std::ffi::c_uint,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: the spec, slots and members are valid for the call; the getset and method
        // tables and the name are static.
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(&mut spec)) }
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
        m.add("Guarded", guarded_type(m.py())?)?;
        m.add_class::<RetryCore>()?;
        Ok(())
    }
}
