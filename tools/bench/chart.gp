# Draws results.png for compare.sh: server CPU µs per request (top) and requests/s (bottom) of
# every loadgen run, one bar per run, coloured by server. Both axes are logarithmic: the runs
# span more than two decades. Variables (gnuplot -e): data (TSV: label, CPU µs/req, req/s,
# colour as 0xRRGGBB), output, width, title.
set terminal pngcairo size width,900 font "sans,10"
set output output
set datafile separator "\t"
set multiplot layout 2,1 title title
set style fill solid 0.8 border -1
set boxwidth 0.7
set grid ytics
set xtics rotate by 40 right noenhanced
set lmargin 12
set bmargin 11
set key top left reverse Left
set ylabel "server CPU µs per request (log scale)"
set logscale y
set yrange [0.5:*]
plot data using 0:2:4:xtic(1) with boxes lc rgb variable notitle, \
     "" using 0:2:(sprintf("%.1f", $2)) with labels offset 0,0.6 font ",8" notitle, \
     keyentry with boxes lc rgb "#3b75af" title "percore", \
     keyentry with boxes lc rgb "#519e3e" title "nginx", \
     keyentry with boxes lc rgb "#ef8636" title "memcached", \
     keyentry with boxes lc rgb "#c53a32" title "redis", \
     keyentry with boxes lc rgb "#999999" title "floor"
set ylabel "requests/s (log scale)"
set yrange [100:*]
set format y "%.0s%c"
plot data using 0:3:4:xtic(1) with boxes lc rgb variable notitle
unset multiplot
