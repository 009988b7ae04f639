"""Self time of a `perf record` profile grouped by component: the kernel,
libc's allocator, the rest of libc, hyper, tokio/mio, http/httparse/bytes,
the filter host with wasmtime, wasp's own code, the Wasm guest.

Usage: python3 bench/profile_components.py PERF_DATA
Symbols are the functions perf names (code inlined into a function counts
as that function's), so the split is approximate at the edges."""
import subprocess, sys, re, collections
data = sys.argv[1]
out = subprocess.run(['perf', 'report', '-i', data, '--no-children', '--sort', 'dso,sym', '--stdio', '-g', 'none', '--percent-limit', '0'],
                     capture_output=True, text=True).stdout
cats = collections.Counter()
rows = []
for line in out.splitlines():
    m = re.match(r'\s*([\d.]+)%\s+(\[JIT\] tid \d+|\S+)\s+\[(.)\]\s+(.*)', line)
    if not m: continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
    if kind == 'k' or 'kernel' in dso: c = 'kernel'
    elif dso.startswith('libc'):
        c = 'libc malloc/free' if re.search(r'malloc|free|_int_|unlink_chunk|consolidate|realloc|tcache|calloc', sym) else 'libc other (memcpy, syscalls wrappers)'
    elif dso == '[vdso]': c = 'vdso (clock reads)'
    elif dso.startswith('[JIT]') or dso.startswith('[unknown]') or dso.startswith('perf-') or 'jit' in dso: c = 'Wasm guest (JIT)'
    elif re.search(r'wasmtime|wasp_filter_host|cranelift', sym): c = 'wasmtime + filter host'
    elif re.search(r'wasp_proxy|wasp::', sym): c = 'wasp proxy'
    elif re.search(r'^(<)?hyper(_util)?::|hyper::', sym): c = 'hyper'
    elif re.search(r'tokio::|mio::', sym): c = 'tokio/mio'
    elif re.search(r'http::|httparse::|bytes::', sym): c = 'http/httparse/bytes'
    elif dso.startswith('wasp'): c = 'wasp binary, other (std, prometheus, core)'
    else: c = 'other: ' + dso
    cats[c] += pct
total = sum(cats.values())
for c, p in cats.most_common():
    print(f'{p:6.1f}%  {c}')
print(f'{total:6.1f}%  total')
