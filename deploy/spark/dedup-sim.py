# Distinct rows per skip-gram mini-batch on prose4 (the figures of SIZING.md section 3).
# Run: /usr/bin/python3 deploy/spark/dedup-sim.py 16384   (needs NumPy and ../shared/data)
import gzip, numpy as np, collections, sys
words = gzip.open(sys.argv[2] if len(sys.argv) > 2 else '../shared/data/corpus/prose4.txt.gz','rt').read().split()
cnt = collections.Counter(words)
vocab = [w for w,c in cnt.items() if c >= 5]
idx = {w:i for i,w in enumerate(vocab)}
freq = np.array([cnt[w] for w in vocab], dtype=np.float64)
ids = np.array([idx.get(w,-1) for w in words]); ids = ids[ids>=0]
T = len(ids); s = 1e-3
keep = np.minimum(1.0, (np.sqrt(freq/(s*T))+1)*(s*T)/freq)
p75 = freq**0.75; p75 /= p75.sum()
rng = np.random.default_rng(1)
B, w, n = int(sys.argv[1]), 5, 5
res=[]
for start in range(0, 20*B, B):
    b = ids[start:start+B]
    b = b[rng.random(len(b)) < keep[b]]
    win = w - rng.integers(0, w, len(b))
    pairs = 0
    for i in range(len(b)):
        lo, hi = max(0,i-win[i]), min(len(b), i+win[i]+1)
        pairs += hi-lo-1
    negs = rng.choice(len(vocab), size=pairs*n, p=p75)
    din = len(np.unique(b)); dout = len(np.unique(np.concatenate([b, negs])))
    res.append((len(b), pairs, pairs*n, din, dout))
r = np.median(np.array(res), axis=0)
print("B=%d kept=%d pairs=%d negdraws=%d distinct_in=%d distinct_out=%d" % ((B,)+tuple(int(x) for x in r)))
