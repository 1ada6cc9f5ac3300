-- tracekit schema v2: the category alias table (docs/schema.md#categories).
-- events.category = the row's `category` for alias = lower(raw cat); a category not listed maps to lower(cat).
-- Canonical names are today's Kineto spellings (libkineto ActivityType.h toString). Rows are tracekit's own:
-- they are re-created whenever the schema is (re)applied.

CREATE TABLE IF NOT EXISTS category_aliases (
    alias     VARCHAR PRIMARY KEY,  -- lower(cat) as written by some exporter
    category  VARCHAR NOT NULL,     -- canonical category
    note      VARCHAR               -- who writes this spelling
);

DELETE FROM category_aliases;

INSERT INTO category_aliases VALUES
    -- today's Kineto (ActivityType.h), each its own canonical name
    ('cpu_op', 'cpu_op', 'Kineto ActivityType name (PyTorch 1.9+): CPU operator (aten::...)'),
    ('user_annotation', 'user_annotation', 'Kineto ActivityType name (PyTorch 1.9+): record_function / ProfilerStep#N'),
    ('gpu_user_annotation', 'gpu_user_annotation', 'Kineto ActivityType name (PyTorch 1.9+): record_function range on a GPU stream'),
    ('kernel', 'kernel', 'device kernel: "kernel" in current Kineto (CUPTI, roctracer, XPUPTI, PrivateUse1), "Kernel" in PyTorch 1.8-1.10 and the Habana writer'),
    ('gpu_memcpy', 'gpu_memcpy', 'current Kineto: device memcpy (CUDA, ROCm, XPU, PrivateUse1)'),
    ('gpu_memset', 'gpu_memset', 'current Kineto: device memset (CUDA, ROCm, XPU, PrivateUse1)'),
    ('cuda_runtime', 'cuda_runtime', 'current Kineto: host runtime API call; Kineto files ROCm HIP calls (and torch_mlu its CNNL/CNDRV calls) here too'),
    ('cuda_driver', 'cuda_driver', 'Kineto: host driver API call (cuLaunchKernel, ...)'),
    ('python_function', 'python_function', 'Kineto ActivityType name: with_stack Python frame'),
    ('cpu_instant_event', 'cpu_instant_event', 'Kineto: CPU instant event'),
    ('overhead', 'overhead', 'Kineto: CUPTI/XPUPTI profiler overhead'),
    ('cuda_sync', 'cuda_sync', 'Kineto: stream/event/context synchronization'),
    ('cuda_event', 'cuda_event', 'Kineto: cudaEventRecord and friends'),
    ('cuda_profiler_range', 'cuda_profiler_range', 'Kineto: CUPTI range profiler (retired)'),
    ('collective_comm', 'collective_comm', 'Kineto: collective communication (XPU xccl)'),
    -- PyTorch 1.8 - 1.10 (libkineto output_json.cpp of 2021 hard-coded these)
    ('runtime', 'cuda_runtime', 'PyTorch 1.8-1.10 "Runtime" (CUDA runtime; ROCm HIP calls); Habana JSON writer'),
    ('memcpy', 'gpu_memcpy', 'PyTorch 1.8-1.10 "Memcpy"; Habana JSON writer'),
    ('memset', 'gpu_memset', 'PyTorch 1.8-1.10 "Memset"; Habana JSON writer'),
    ('operator', 'cpu_op', 'PyTorch 1.8 "Operator" (CPU ops and record_function ranges)'),
    ('user', 'gpu_user_annotation', 'PyTorch 1.8 "User": GPU-side user range on track "stream N user"'),
    ('python', 'python_function', 'legacy "Python" (TensorBoard profiler plugin maps it with python_function)'),
    -- other accelerators: host runtime/driver calls join the runtime classes (as Kineto files HIP under cuda_runtime)
    ('mtia_runtime', 'cuda_runtime', 'Kineto MTIA: host runtime call'),
    ('xpu_runtime', 'cuda_runtime', 'Kineto XPUPTI (Intel XPU): host runtime call'),
    ('xpu_driver', 'cuda_driver', 'Kineto XPUPTI (Intel XPU): Level Zero driver call'),
    ('privateuse1_runtime', 'cuda_runtime', 'Kineto PrivateUse1 backends: host runtime call'),
    ('privateuse1_driver', 'cuda_driver', 'Kineto PrivateUse1 backends: host driver call'),
    ('hpu_op', 'cuda_runtime', 'Kineto HPU (Habana Gaudi): host runtime event'),
    ('glow_runtime', 'cuda_runtime', 'Kineto Glow: host runtime event'),
    ('musa_runtime', 'cuda_runtime', 'Moore Threads kineto fork (MUSA): host runtime call'),
    ('musa_driver', 'cuda_driver', 'Moore Threads kineto fork (MUSA): host driver call'),
    ('gcu_runtime', 'cuda_runtime', 'Enflame kineto fork (GCU): host runtime call'),
    ('gcu_driver', 'cuda_driver', 'Enflame kineto fork (GCU): host driver call'),
    -- other accelerators: device work
    ('mtia_ccp_events', 'kernel', 'Kineto MTIA: on-device events (a Kineto ActivityType.h revision aliases MTIA_CCP_EVENTS to CONCURRENT_KERNEL; HTA counts them as GPU kernels)'),
    ('gcu_memcpy', 'gpu_memcpy', 'Enflame kineto fork: "GCU_MEMCPY"'),
    ('gcu_memset', 'gpu_memset', 'Enflame kineto fork: "GCU_MEMSET"'),
    ('gcu_user_annotation', 'gpu_user_annotation', 'Enflame kineto fork: "GCU_USER_ANNOTATION"'),
    ('xpu_sync', 'cuda_sync', 'Kineto XPUPTI: synchronization'),
    ('musa_sync', 'cuda_sync', 'Moore Threads kineto fork: synchronization'),
    ('gcu_sync', 'cuda_sync', 'Enflame kineto fork: synchronization'),
    -- the pre-Kineto autograd profiler export (torch.autograd.profiler export_chrome_trace, use_kineto=False) writes
    -- no `cat` at all: its events are told apart by pid; these two keys stand for a missing cat on those pids
    ('(cuda functions)', 'kernel', 'legacy autograd profiler export (`export_chrome_trace` of the pre-Kineto profiler, `use_kineto=False`): no `cat`; an event on pid `"CUDA functions"` is a GPU kernel'),
    ('(cpu functions)', 'cpu_op', 'the same export: no `cat`; an event on pid `"CPU functions"` is a CPU op');
