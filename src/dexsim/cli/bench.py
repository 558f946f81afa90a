import click
@click.group() 
def bench(): pass
