# Loss curves of the shipped models: gnuplot Scripts/training/loss.gp (make loss-plot).
# Reads Models/<arch>-loss.csv (step,tokens,train_loss,valid_loss,lr,seconds,tokens_per_s)
# for each arch in `archs` (gnuplot -e "archs='llama mamba jamba'"; make loss-plot passes
# those whose file exists), writes <outdir>/loss.png and loss.svg (outdir: Models).
if (!exists("archs")) archs = 'llama mamba'
if (!exists("outdir")) outdir = 'Models'
name(a) = a eq 'llama' ? 'Llama' : a eq 'mamba' ? 'Mamba' : a eq 'jamba' ? 'Jamba' : a
color(a) = a eq 'llama' ? '#1f77b4' : a eq 'mamba' ? '#d62728' : a eq 'jamba' ? '#2ca02c' : '#7f7f7f'
titles = ''
do for [a in archs] { titles = titles . (strlen(titles) ? ', ' : '') . 'orochi-ja-' . a }
set datafile separator ','
set key top right
set grid
set xlabel 'training tokens (millions)'
set ylabel 'cross-entropy (nats per token)'
set title titles . ': training and validation loss'
set yrange [*:9.5]
set terminal pngcairo size 900,560 font ',11'
set output outdir . '/loss.png'
plot for [a in archs] 'Models/' . a . '-loss.csv' every ::1 using ($2/1e6):3 with lines lw 2 lc rgb color(a) title name(a) . ' train', \
     for [a in archs] "< awk -F, 'NR > 1 && $4 != \"\"' Models/" . a . "-loss.csv" using ($2/1e6):4 with linespoints pt 7 lw 2 lc rgb color(a) dt 2 title name(a) . ' validation'
set terminal svg size 900,560 font ',11'
set output outdir . '/loss.svg'
replot
