"""Writes a synthetic NAB-like folder (data/<category>/*.csv and
labels/combined_windows.json) standing in for the two NAB categories that are
not in the shared files, for the experiment harness (see DETECTOR.md):

  python3 testdata/synthnab.py /tmp/synthnab
  NAB_SYNTH=/tmp/synthnab NAB_EXPERIMENT='' go test -run TestExperiment -v .

synthAdExchange: 10 hourly series of ~1,600 values (daily cycle, log-normal
noise with occasional unlabelled spikes, a wandering level) with a labelled
2-value spike or 150-value level change, and a labelled 3-value spike.
synthTweets: 6 bursty 5-minute count series of 15,000-17,000 values (as
bursty() in synth_test.go) with two labelled 2-hour bursts of 6x volume.
Windows are NAB's: 10% of the file divided among its anomalies, centred.
It is a proxy: its scores are not those of the real categories.
"""
import math, random, json, os, sys, datetime
out = sys.argv[1] if len(sys.argv) > 1 else '/tmp/synthnab'
labels={}
def write(cat,name,t0,step,xs,anoms):
    os.makedirs(f'{out}/data/{cat}',exist_ok=True)
    ts=[t0+datetime.timedelta(seconds=step*i) for i in range(len(xs))]
    with open(f'{out}/data/{cat}/{name}.csv','w') as f:
        f.write('timestamp,value\n')
        for t,x in zip(ts,xs): f.write(f'{t:%Y-%m-%d %H:%M:%S},{x:.6g}\n')
    n=len(xs); w=int(0.1*n/max(1,len(anoms)))
    wins=[]
    for a in sorted(anoms):
        s=max(0,a-w//2); e=min(n-1,a+w//2)
        wins.append([f'{ts[s]:%Y-%m-%d %H:%M:%S}.000000',f'{ts[e]:%Y-%m-%d %H:%M:%S}.000000'])
    labels[f'{cat}/{name}.csv']=wins
t0=datetime.datetime(2011,7,1)
for k in range(10):
    r=random.Random(k)
    n=1600+r.randint(-200,200); base=r.choice([0.1,0.5,2,10])
    drift=0; xs=[]
    for i in range(n):
        drift=0.99*drift+0.03*r.gauss(0,1)
        noise=r.gauss(0,0.25)
        if r.random()<0.01: noise+=abs(r.gauss(0,0.8))   # heavy-tailed normal spikes
        xs.append(base*(1+0.4*math.sin(2*math.pi*i/24))*math.exp(drift+noise))
    anoms=[]
    a=r.randint(int(0.3*n),int(0.55*n)); anoms.append(a)
    if k%2==0:
        for i in range(a,a+2): xs[i]*=r.choice([3,4,0.2])
    else:
        f=r.choice([2,0.4])
        for i in range(a,min(n,a+150)): xs[i]*=f
    a=r.randint(int(0.65*n),int(0.9*n)); anoms.append(a)
    for i in range(a,a+3): xs[i]*=r.choice([3,5])
    write('synthAdExchange',f'ad_{k}',t0,3600,xs,anoms)
def poisson(r,l):
    if l>50: return max(0,round(l+math.sqrt(l)*r.gauss(0,1)))
    L=math.exp(-l);k=0;p=1
    while True:
        p*=r.random()
        if p<=L: return k
        k+=1
for k in range(6):
    r=random.Random(100+k)
    n=15000+r.randint(0,2000); base=[3,30,300][k%3]
    ar=0;burst=0;xs=[]
    anoms=sorted(r.sample(range(int(0.2*n),int(0.95*n)),2))
    for i in range(n):
        ar=0.98*ar+0.06*r.gauss(0,1)
        if r.random()<0.003: burst+=2*r.random()**(-1/1.5)
        burst*=0.7
        boost=1
        for a in anoms:
            if a<=i<a+24: boost=6
        lam=base*(1+0.6*math.sin(2*math.pi*i/288))*math.exp(ar)*(1+burst)*boost
        xs.append(poisson(r,lam))
    write('synthTweets',f'tw_{k}',t0,300,xs,anoms)
os.makedirs(f'{out}/labels',exist_ok=True)
json.dump(labels,open(f'{out}/labels/combined_windows.json','w'),indent=1)
